"""The `ragtune` command, called through main(argv) as a user would type it."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from cli.main import main

from .conftest import KNOWLEDGE, ROOT
from .serve.browser import RagtuneServer, copy_data_dir


def test_help_lists_commands_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("ingest", "serve", "search", "eval", "status", "config"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path):
    assert main(["ingest", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
    assert main(["search", "refund"]) == 2
    assert "run `ragtune ingest` first" in capsys.readouterr().err
    (tmp_path / "ragtune.toml").write_text("[retrieval]\ntop_k = 0\n")
    assert main(["--config", str(tmp_path / "ragtune.toml"), "config"]) == 2
    assert "retrieval.top_k" in capsys.readouterr().err


@pytest.mark.slow
def test_ingest_search_status_round_trip(capsys, tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    for name in ("faq/billing-faq.md", "policies/refund-policy.pdf", "products/pricing.html"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes((KNOWLEDGE / name).read_bytes())
    (folder / "broken.docx").write_bytes(b"not a docx")
    assert main(["ingest", str(folder), "--json"]) == 1  # one file failed, the rest is published
    summary = json.loads(capsys.readouterr().out)
    assert summary["added"] == 3 and summary["failed"] == 1 and summary["published"]
    assert summary["failures"][0]["doc"] == "broken.docx"

    assert main(["search", "refund annual plan", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "policies/refund-policy.pdf" in out.splitlines()[0]

    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["version"] == summary["version"] and status["documents"] == 3


def test_eval_retrieval_on_a_small_beir_set(capsys, tmp_path):
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    docs = {
        "d1": ("Refunds", "Annual plans can be refunded within 30 days of purchase."),
        "d2": ("Passwords", "Reset your password from the sign-in page; the link is valid for one hour."),
        "d3": ("Storage", "The Pro plan includes one terabyte of storage."),
    }
    (data / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": t, "text": x}) for k, (t, x) in docs.items()))
    (data / "queries.jsonl").write_text(
        "\n".join(
            json.dumps({"_id": q, "text": t}) for q, t in [("q1", "money back for a yearly plan"), ("q2", "forgot password")]
        )
    )
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    assert main(["eval", "retrieval", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {
        "ndcg@10",
        "recall@10",
        "recall@100",
        "mrr@10",
        "index_seconds",
        "query_ms_p50",
        "query_ms_p95",
        "mode",
        "docs",
        "queries",
    }
    assert (
        report["recall@10"] == 1.0
        and report["ndcg@10"] > 0.6
        and report["docs"] == 3
        and report["queries"] == 2
        and report["mode"] == "hybrid"
    )
    assert main(["eval", "retrieval", str(data), "--split", "dev"]) == 2
    assert "qrels/dev.tsv" in capsys.readouterr().err


def test_serve_on_a_busy_port_fails_at_once_with_one_line(tmp_path):
    """The port is bound before anything slow is loaded (the bundled model took 15 s to load before
    "address already in use" came, issue 19)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
    env |= {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RAGTUNE_DATA_DIR": str(tmp_path / "data")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"ragtune serve: error: cannot listen on 127.0.0.1:{port}: the address is already in use (another server, or "
        "an earlier `ragtune serve` still running); stop it or choose another port (--port, server.port)"
    )
    assert elapsed < 4, f"took {elapsed:.1f} s to fail"  # Python, settings and the imports; no model


@pytest.mark.slow
def test_serve_logs_each_start_up_step(tmp_path, knowledge_index, tiny_gguf):
    """Starting takes a while on a small machine; the log says what it is doing."""
    settings, index = knowledge_index
    data = copy_data_dir(settings.data_dir, tmp_path / "data-copy")
    config = {"llm": {"engine": "llamacpp", "gguf_path": str(tiny_gguf)}, "observability": {"log_format": "text"}}
    server = RagtuneServer(data, tmp_path / "serve", config)
    try:
        assert server.wait_ready()["index_version"] == index.current_version()
        log = server.log_path.read_text(encoding="utf-8")
    finally:
        server.stop()
    steps = [
        f"bound 127.0.0.1:{server.port}; starting",
        f"index version {index.current_version()}: ",
        "loading embedding model all-MiniLM-L6-v2",
        "embedding model loaded in ",
        "loading answer engine: llamacpp model tiny-llama, then its self-check",
        "answer engine ready in ",
        "ready in ",
        f" s: http://127.0.0.1:{server.port} (index {index.current_version()})",
    ]
    at = [log.find(step) for step in steps]
    assert -1 not in at, f"missing {[s for s, i in zip(steps, at, strict=True) if i < 0]} in:\n{log}"
    assert at == sorted(at), log  # in this order


def _command_paths(parser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command the parser knows, as word tuples: ("ingest",), ("eval", "retrieval"), ("train", "run"), ..."""
    import argparse

    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths.append(prefix + (name,))
                paths += _command_paths(child, prefix + (name,))
    return paths


def _readme_cli_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## CLI\n", 1)[1]
    return section.split("```", 2)[1]


def test_readme_cli_block_lists_every_command():
    """The README's CLI block once left out `train` (issue 19); it is checked against the parser."""
    from cli.main import _parser

    block = _readme_cli_block()
    lines = [line.strip() for line in block.splitlines()]
    paths = _command_paths(_parser())
    assert ("train", "export") in paths and ("eval", "answers") in paths  # the walk reaches nested commands
    groups = {path[0] for path in paths if len(path) > 1}
    for path in paths:
        if path in {(g,) for g in groups}:
            continue  # a group (eval, train) is listed through its commands
        usage = "ragtune " + " ".join(path)
        assert any(line == usage or line.startswith(usage + " ") for line in lines), f"README's CLI block lacks `{usage}`"


def test_every_file_type_is_in_ingest_help_the_readme_and_the_default_setting(capsys):
    """`ingest --help` listed 5 of the 12 file types (issue 19): help and README follow the readers' registry."""
    from ingest.parsers import PARSERS
    from ragtune.settings import IngestSettings

    types = sorted(PARSERS)
    assert len(types) >= 12 and {".md", ".pdf", ".docx", ".pptx", ".xlsx", ".ipynb"} <= set(types)
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    help_text = capsys.readouterr().out
    block = _readme_cli_block()
    for suffix in types:
        assert re.search(rf"(?<![\w.]){re.escape(suffix)}(?!\w)", help_text), f"`ingest --help` lacks {suffix}"
        assert re.search(rf"(?<![\w.]){re.escape(suffix)}(?!\w)", block), f"README's CLI block lacks {suffix}"
    assert sorted(IngestSettings().extensions) == types  # read by default: every type there is a reader for
