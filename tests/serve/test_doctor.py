"""`ragtune doctor`: each check says ok or what failed and how to fix it; any failure exits 1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from cli import doctor
from cli.main import main


@pytest.mark.slow
def test_doctor_runs_the_engine_self_check_and_names_what_is_missing(capsys, monkeypatch, tiny_gguf):
    monkeypatch.setenv("RAGTUNE_LLM__ENGINE", "llamacpp")
    monkeypatch.setenv("RAGTUNE_LLM__GGUF_PATH", str(tiny_gguf))
    assert main(["doctor"]) == 1  # nothing ingested in this test's data dir
    out = capsys.readouterr().out
    assert "ok   data_dir:" in out
    assert "FAIL index: no index published" in out and "fix: run `ragtune ingest`" in out
    assert "ok   embedding: all-MiniLM-L6-v2: 384 dimensions" in out
    assert "ok   engine: llamacpp model tiny-llama: self-check passed with default parameters" in out

    assert main(["doctor", "--check", "engine"]) == 0
    assert capsys.readouterr().out.count("\n") == 1


def test_doctor_fails_on_a_model_that_cannot_be_loaded(capsys, monkeypatch, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setenv("RAGTUNE_LLM__ENGINE", "llamacpp")
    monkeypatch.setenv("RAGTUNE_LLM__GGUF_PATH", str(broken))
    assert main(["doctor", "--check", "engine"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL engine: llamacpp model broken: cannot load GGUF model") and "fix:" in out


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody may write into: chmod for a normal user; root ignores modes, so there it is
    made immutable (chattr +i), which root cannot write into either."""
    folder = tmp_path / "read-only-data"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def test_a_read_only_data_dir_fails_with_its_fix(capsys, read_only_dir):
    assert main(["--data-dir", str(read_only_dir), "doctor", "--check", "data_dir"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAIL data_dir: {read_only_dir} is not writable")
    assert "fix: make it writable for the user running ragtune, or point RAGTUNE_DATA_DIR" in out


def test_free_space_thresholds_warn_and_fail(capsys, monkeypatch):
    free_mb = shutil.disk_usage(Path.cwd()).free // 2**20
    monkeypatch.setattr(doctor, "FREE_WARN_MB", free_mb + 10_000)
    assert main(["doctor", "--check", "data_dir"]) == 0  # a warning is not a failure
    out = capsys.readouterr().out
    assert out.startswith("warn data_dir:") and "a large ingest may not fit" in out and "fix: free disk space" in out
    monkeypatch.setattr(doctor, "FREE_FAIL_MB", free_mb + 10_000)
    assert main(["doctor", "--check", "data_dir"]) == 1
    assert capsys.readouterr().out.startswith("FAIL data_dir:")
    monkeypatch.setattr(doctor, "FREE_WARN_MB", 1)
    monkeypatch.setattr(doctor, "FREE_FAIL_MB", 0)
    assert main(["doctor", "--check", "data_dir"]) == 0
    assert capsys.readouterr().out.startswith("ok   data_dir:")


def test_an_unreachable_chroma_server_fails_with_its_fix(capsys, monkeypatch):
    assert main(["doctor", "--check", "chroma"]) == 0
    assert capsys.readouterr().out.startswith("skip chroma: embedded Chroma")
    monkeypatch.setenv("RAGTUNE_CHROMA__URL", f"http://127.0.0.1:{_closed_port()}")
    assert main(["doctor", "--check", "chroma"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL chroma: Chroma server at http://127.0.0.1:") and "is not reachable" in out
    assert "fix: start the Chroma server" in out and "unset chroma.url" in out


def test_an_unreachable_postgres_store_fails_with_its_fix_and_hides_the_password(capsys, monkeypatch):
    assert main(["doctor", "--check", "store"]) == 0
    assert capsys.readouterr().out.startswith("ok   store: SQLite ")
    monkeypatch.setenv("RAGTUNE_STORE__URL", f"postgresql://ragtune:s3cret-pw@127.0.0.1:{_closed_port()}/ragtune")
    assert main(["doctor", "--check", "store"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL store: postgresql://ragtune:***@127.0.0.1:") and "cannot connect to the Postgres store" in out
    assert "fix: start the Postgres server and check store.url" in out
    assert "s3cret-pw" not in out


def test_ollama_reachability_is_checked_when_it_answers(capsys, monkeypatch, ollama_stand_in):
    assert main(["doctor", "--check", "ollama"]) == 0
    assert capsys.readouterr().out.startswith("skip ollama:")
    monkeypatch.setenv("RAGTUNE_LLM__ENGINE", "ollama")
    monkeypatch.setenv("RAGTUNE_OLLAMA__MODEL", "ragtune")
    monkeypatch.setenv("RAGTUNE_OLLAMA__HOST", ollama_stand_in.url)
    assert main(["doctor", "--check", "ollama"]) == 0
    assert capsys.readouterr().out.startswith(f"ok   ollama: Ollama at {ollama_stand_in.url} answers and has 'ragtune'")
    monkeypatch.setenv("RAGTUNE_OLLAMA__MODEL", "other")
    assert main(["doctor", "--check", "ollama"]) == 1
    assert "fix: run `ollama create other -f Modelfile`" in capsys.readouterr().out
    monkeypatch.setenv("RAGTUNE_OLLAMA__HOST", f"http://127.0.0.1:{_closed_port()}")
    assert main(["doctor", "--check", "ollama"]) == 1
    out = capsys.readouterr().out
    assert "is not reachable" in out and "fix: start Ollama" in out


def test_settings_that_do_not_load_are_a_failed_check_not_a_crash(capsys, monkeypatch):
    monkeypatch.setenv("RAGTUNE_LLM__N_CTX", "12")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL settings: invalid settings") and "llm.n_ctx" in out
    assert "fix: correct the setting named above" in out
    assert out.count("\n") == 2  # nothing else can be checked without settings


def test_no_key_beyond_loopback_fails(capsys, monkeypatch):
    assert main(["doctor", "--check", "keys"]) == 0
    assert capsys.readouterr().out.startswith("ok   keys: no API keys: the API is open to loopback clients only")
    monkeypatch.setenv("RAGTUNE_SERVER__HOST", "0.0.0.0")
    assert main(["doctor", "--check", "keys"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL keys: no API key is configured while server.host is 0.0.0.0")
    assert "fix: add a key: RAGTUNE_AUTH__ADMIN_KEYS=" in out and "bind server.host to 127.0.0.1" in out


def test_a_short_key_fails_with_how_to_make_one(capsys, monkeypatch):
    monkeypatch.setenv("RAGTUNE_AUTH__ADMIN_KEYS", '[{"name": "ops", "key": "short-key"}]')
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL settings:") and "too short" in out and "secrets.token_urlsafe" in out
    assert "short-key" not in out


def test_json_output_lists_every_check(capsys, monkeypatch, tiny_gguf):
    monkeypatch.setenv("RAGTUNE_LLM__ENGINE", "llamacpp")
    monkeypatch.setenv("RAGTUNE_LLM__GGUF_PATH", str(tiny_gguf))
    assert main(["doctor", "--json", "--check", "settings", "--check", "data_dir", "--check", "index", "--check", "keys"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        ("settings", "ok"),
        ("data_dir", "ok"),
        ("index", "fail"),
        ("keys", "ok"),
    ]
    assert report["checks"][2]["fix"] == "run `ragtune ingest`"


def test_a_configured_model_path_that_does_not_exist_fails_with_its_fix(capsys, monkeypatch, tmp_path):
    """engine `auto` (the default) falls back to extractive answers when it finds no model, but a
    model someone named is a failure, not "no answer engine configured" (issue 19)."""
    missing = tmp_path / "nonexistent" / "model.gguf"
    monkeypatch.delenv("RAGTUNE_LLM__ENGINE", raising=False)
    monkeypatch.setenv("RAGTUNE_LLM__GGUF_PATH", str(missing))
    assert main(["doctor", "--check", "engine"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAIL engine: the configured answer model cannot be loaded: llm.gguf_path {missing} does not exist")
    assert "fix: point llm.gguf_path (RAGTUNE_LLM__GGUF_PATH) at an existing GGUF file" in out
    assert "no answer engine configured" not in out
