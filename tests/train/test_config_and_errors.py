"""A bad training config or dataset is a one-line error naming file and line, and exit 2."""

import json

import pytest

from cli.main import main
from ragtune.errors import ConfigError
from train.config import load_config
from train.sources import DatasetError, read_examples


def test_config_error_names_line_and_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: x\nbase_model: some/model\nlora:\n  r: 0\n")
    with pytest.raises(ConfigError, match=r"run.yaml:4: lora.r: Input should be greater than 0"):
        load_config(path)
    path.write_text("name: x\nbase_model: m\nbatch_size: lots\n")
    with pytest.raises(ConfigError, match=r"run.yaml:3: batch_size"):
        load_config(path)
    path.write_text("name: x\nbase_model: m\nlearning_rte: 0.1\n")
    with pytest.raises(ConfigError, match=r"run.yaml:3: learning_rte: Extra inputs"):
        load_config(path)
    path.write_text("name: x\n  base_model: [\n")
    with pytest.raises(ConfigError, match=r"run.yaml:\d+: not valid YAML"):
        load_config(path)


def test_cli_config_error_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nbase_model: m\ndata:\n  paraphrases: 9\n")
    assert main(["train", "prepare", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.yaml:4: data.paraphrases" in err


def test_bad_dataset_lines_are_located(tmp_path, capsys):
    good = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": json.dumps({"answer": "Hi", "sources": []}),
            },
        ]
    }
    cases = {
        "{not json": "malformed JSON",
        json.dumps({"messages": good["messages"][1:]}): "messages must be system",
        json.dumps({"messages": good["messages"][:2] + [{"role": "assistant", "content": '{"answer": ""}'}]}): "fails the schema",
        json.dumps(
            {"messages": good["messages"][:2] + [{"role": "assistant", "content": '{"answer": "Hi", "handoff": true}'}]}
        ): "fails the schema",
    }
    for line, message in cases.items():
        path = tmp_path / "data.jsonl"
        path.write_text(json.dumps(good) + "\n\n" + line + "\n")
        assert main(["train", "validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}:3:" in err and message in err, err
    path.write_text(json.dumps(good) + "\n")
    assert main(["train", "validate", str(path)]) == 0


def test_example_pairs_need_every_field(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"question": "q", "answer": "a", "doc": "faq/x.md", "quote": "a"}\n{"question": "q2", "answer": "a"}\n')
    with pytest.raises(DatasetError, match=r"pairs.jsonl:2: missing or empty 'doc'"):
        read_examples(path)
