"""The `ragtune` command, called through main(argv) as a user would type it."""

import json

import pytest

from cli.main import main

from .conftest import KNOWLEDGE


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
