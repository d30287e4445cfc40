"""`ragtune doctor`: each check says ok or what failed and how to fix it; any failure exits 1."""

from __future__ import annotations

from cli.main import main


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
