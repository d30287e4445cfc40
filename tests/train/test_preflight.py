"""The operator path from a fresh setup: missing training packages and a missing index are one line
that names the fix, before any long pass."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from cli.main import main
from train.preflight import TRAIN_PACKAGES, check_examples_indexed, cited_documents, missing_packages

from ..conftest import KNOWLEDGE, ROOT

SMOKE = ROOT / "train" / "configs" / "smoke-smollm2.yaml"
EXAMPLES = ROOT / "train" / "examples" / "knowledge_pairs.jsonl"


def smoke_config(tmp_path):
    """The smoke config with its repository paths made absolute (tests run in tmp_path)."""
    target = tmp_path / "smoke.yaml"
    target.write_text(SMOKE.read_text().replace("train/examples/", f"{ROOT}/train/examples/"))
    return target


def run_dir(tmp_path):
    run = tmp_path / "runs" / "smoke"
    run.mkdir(parents=True, exist_ok=True)
    shutil.copy(SMOKE, run / "config.yaml")
    return run


@pytest.mark.parametrize("step", ["prepare", "run", "export", "eval", "validate"])
def test_each_step_without_the_training_packages_is_one_line_naming_the_install_step(step, tmp_path, monkeypatch, capsys):
    for name in ("peft", "trl"):  # as if the `train` extra had never been installed
        monkeypatch.setitem(sys.modules, name, None)
    argv = {
        "prepare": ["train", "prepare", "--config", str(SMOKE)],
        "run": ["train", "run", "--config", str(SMOKE)],
        "export": ["train", "export", str(run_dir(tmp_path))],
        "eval": ["train", "eval", str(run_dir(tmp_path))],
        "validate": ["train", "validate", str(tmp_path / "train.jsonl"), "--config", str(SMOKE)],
    }[step]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"`ragtune train {step}` needs the training packages" in err[0]
    assert "peft, trl are not installed" in err[0] and "bash scripts/setup.sh --train" in err[0]


def test_the_process_prints_no_traceback(tmp_path):
    code = (
        "import sys; sys.modules['peft'] = None\n"
        "from cli.main import main\n"
        f"sys.exit(main(['train', 'run', '--config', {str(SMOKE)!r}]))"
    )
    env = {"PYTHONPATH": str(ROOT), "RAGTUNE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "peft is not installed: run bash scripts/setup.sh --train" in done.stderr


def test_installed_packages_are_found():
    assert missing_packages() == []  # this environment has the train extra (setup.sh --dev)
    assert set(TRAIN_PACKAGES) >= {"transformers", "peft", "trl", "gguf"}


def test_prepare_on_an_empty_index_says_to_ingest_first(capsys):
    assert main(["train", "prepare", "--config", str(SMOKE)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the knowledge index is empty: run `ragtune ingest`" in err[0], err


def test_prepare_refuses_an_index_without_the_documents_the_examples_cite(tmp_path, capsys):
    # An index of another folder (only two of the bundled documents): the examples' documents are missing.
    folder = tmp_path / "other"
    (folder / "faq").mkdir(parents=True)
    for name in ("faq/support-hours.txt", "faq/mobile-app.md"):
        shutil.copy(KNOWLEDGE / name, folder / name)
    assert main(["ingest", str(folder)]) == 0
    capsys.readouterr()
    assert main(["train", "prepare", "--config", str(smoke_config(tmp_path))]) == 2
    err = capsys.readouterr().err.strip()
    wanted = cited_documents([EXAMPLES])
    missing = len(wanted - {"faq/support-hours.txt", "faq/mobile-app.md"})
    assert f"{missing} of the {len(wanted)} documents the training examples cite are not in the index" in err
    assert "run `ragtune ingest`" in err and "Traceback" not in err
    assert not (tmp_path / "data" / "train").exists()  # nothing was built


def test_the_bundled_index_holds_every_document_the_examples_cite(knowledge_index):
    _, index = knowledge_index
    assert check_examples_indexed(index, [EXAMPLES]) == len(cited_documents([EXAMPLES])) > 5


def test_smoke_config_is_small_and_self_contained():
    from train.config import load_config

    config = load_config(SMOKE)
    assert config.max_steps is not None and config.max_steps <= 5 and config.max_length <= 512
    assert config.data.qa == []  # nothing outside the repository
    for path in [*config.data.examples, config.data.heldout]:
        assert path is not None and (ROOT / path).is_file()
    docs = {json.loads(line)["doc"] for line in EXAMPLES.read_text().splitlines() if line.strip()}
    assert docs and all((KNOWLEDGE / d).is_file() for d in docs)
