"""The `ragtune` command: one entry point, a subcommand per job, composing every part from above.

`main(argv) -> int` so tests call it directly. Heavy packages are imported inside the commands,
so `ragtune --help` is instant. A user error prints one line and exits 2; a partly failed ingest
exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cli.doctor import NAMES as DOCTOR_NAMES
from ragtune.errors import RagtuneError
from ragtune.settings import Settings, describe, load_settings

EXAMPLES = {
    "ingest": "examples:\n  ragtune ingest                  # the folder in ingest.source_dir (knowledge/)\n  ragtune ingest ./docs --json    # another folder, summary as JSON",
    "serve": "examples:\n  ragtune serve\n  ragtune serve --host 0.0.0.0 --port 8080\n  RAGTUNE_OLLAMA__MODEL=ragtune ragtune serve   # answer with an Ollama model",
    "eval": "examples:\n  ragtune eval retrieval ../shared/data/scifact --split train\n  ragtune eval retrieval DATA --mode bm25 --json\n  ragtune eval retrieval data/beir/scifact --split test --embedder retriever-v1",
    "eval answers": "examples:\n  ragtune eval answers bench/answer_questions.jsonl\n  ragtune eval answers bench/answer_tuning_v2.jsonl --mode extractive\n  ragtune eval answers QUESTIONS.jsonl --mode extractive --json\n  ragtune eval answers QUESTIONS.jsonl --url http://localhost:8000",
    "search": 'examples:\n  ragtune search "how do I get a refund"\n  ragtune search "reset password" --mode bm25 -k 3',
    "status": "examples:\n  ragtune status --json",
    "doctor": "examples:\n  ragtune doctor                  # every check\n  ragtune doctor --check engine   # only the answer engine's self-check (what setup runs)\n  ragtune doctor --json           # for scripts and health probes",
    "db": "examples:\n  ragtune db upgrade    # bring the store's tables to the newest migration (serving does it at start too)\n  ragtune db current    # the store's migration now (exit 1 when it is behind)",
    "config": "examples:\n  ragtune config            # effective settings as JSON\n  ragtune config --docs     # every setting with its description\n  ragtune config --markdown > docs/settings.md",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragtune",
        description="Customer-support chat backend: ingest documents, serve grounded JSON answers, tune the model's style.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings come from ragtune.toml (or RAGTUNE_CONFIG) and RAGTUNE_* environment variables; see `ragtune config --docs`.",
    )
    parser.add_argument("--config", type=Path, help="settings file (default: ./ragtune.toml if present)")
    parser.add_argument("--data-dir", type=Path, help="folder for all state (default: RAGTUNE_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            epilog=EXAMPLES.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    from ingest.parsers import PARSERS  # the registry of readers: every file type ingestion reads (cheap to import)

    p = command(
        "ingest",
        f"Index a folder of documents ({len(PARSERS)} file types); only changed files are embedded.",
        f"Index a folder of documents; only changed files are embedded. File types read: {', '.join(sorted(PARSERS))} "
        "(ingest.extensions narrows them); any other file is reported as unsupported.",
    )
    p.add_argument("path", nargs="?", type=Path, help="folder to ingest (default: ingest.source_dir)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = command("serve", "Serve the chat API (FastAPI) on the current index.")
    p.add_argument("--host", help="bind address (default: server.host)")
    p.add_argument("--port", type=int, help="port (default: server.port)")

    p = command("search", "Query the index from the terminal and print the ranked chunks.")
    p.add_argument("query")
    p.add_argument("-k", "--top-k", type=int, default=None)
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"])

    p = command("eval", "Measure retrieval quality (BEIR-layout data) or answer quality (a questions file).")
    evsub = p.add_subparsers(dest="what", metavar="WHAT")
    r = evsub.add_parser(
        "retrieval",
        help="nDCG@10, recall, MRR and latency on DATASET_DIR",
        epilog=EXAMPLES["eval"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("dataset", type=Path, help="folder with corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    r.add_argument("--split", default="test")
    r.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default=None)
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--max-queries", type=int, default=None, help="evaluate only the first N judged queries")
    r.add_argument(
        "--embedder",
        help="base (the configured model), a tuned version (retriever-vN) or a model folder "
        "(default: what ingestion embeds with, a deployed version included)",
    )
    a = evsub.add_parser(
        "answers",
        help="fact/citation accuracy, refusals, debris, injections and latency of whole answers",
        epilog=EXAMPLES["eval answers"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument(
        "questions",
        type=Path,
        nargs="+",
        help='JSON lines: questions {"id", "kind", "question", "expected_paths", "facts", ...} and conversations '
        '{"id", "turns": [...]} (schema: evaluation/answer_sets.py)',
    )
    a.add_argument(
        "--mode", choices=["auto", "generative", "extractive"], default=None, help="answer mode (default: chat.answer_mode)"
    )
    a.add_argument("--url", help="evaluate a running server instead of the in-process pipeline")
    a.add_argument("--limit", type=int, default=None, help="only the first N questions and the first N conversations")
    a.add_argument("--json", action="store_true", help="print the report, every answer included, as JSON")

    p = command("status", "Show the published index version and what it holds.")
    p.add_argument("--json", action="store_true")

    p = command(
        "doctor",
        "Check settings, data directory, index, embedding model, answer engine, Ollama, Chroma, store and API keys; "
        "each failure with its fix (exit 1 on any).",
    )
    p.add_argument("--check", action="append", choices=DOCTOR_NAMES, help="run only this check (repeatable)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")

    p = command("db", "The store's schema (conversations, feedback, jobs, rate limits): Alembic migrations.")
    p.add_argument("action", choices=["upgrade", "current"], help="upgrade: migrate to the newest; current: show the revision")

    p = command("config", "Print the effective settings.")
    p.add_argument("--docs", action="store_true", help="list every setting with its default and description")
    p.add_argument("--markdown", action="store_true", help="the settings reference as Markdown (docs/settings.md)")

    from cli import train as cli_train  # train subcommands (parsers only; the work is imported lazily)

    cli_train.add_parser(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"data_dir": str(args.data_dir)} if args.data_dir else None
    return load_settings(config_file=args.config, overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if args.command == "doctor":  # doctor reports settings that do not load as a failed check
        from cli.doctor import cmd_doctor

        return cmd_doctor(args, lambda: _settings(args))
    try:
        settings = _settings(args)
        handler = COMMANDS[args.command]
        return handler(args, settings)
    except RagtuneError as exc:
        print(f"ragtune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ragtune {args.command}: interrupted", file=sys.stderr)
        return 130


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.pipeline import run_ingest
    from ingest.sources import scan_folder
    from ragtune.progress import RichProgress

    source = args.path or settings.ingest.source_dir
    items, failures = scan_folder(source, settings.ingest)
    with RichProgress() as progress:
        report = run_ingest(settings, items, failures, source=str(source), progress=progress)
    if args.json:
        summary = report.summary() | {"failures": [{"doc": f.doc_id, "reason": f.reason} for f in report.failed]}
        summary["flagged_documents"] = report.flagged
        print(json.dumps(summary, indent=1))
        return report.exit_code
    if report.rebuild_reason:
        print(report.rebuild_reason)
    for failure in report.failed:
        kept = " (previous version kept)" if failure.doc_id in report.kept_stale else ""
        print(f"FAILED {failure.doc_id}: {failure.reason}{kept}", file=sys.stderr)
    for doc_id, found in report.flagged.items():
        print(f"FLAGGED {doc_id}: {flag_summary(found)}; withheld from answers", file=sys.stderr)
    s = report.summary()
    state = f"published {s['version']}" if report.published else f"nothing changed, still {s['version']}"
    print(
        f"{state}: added {s['added']}, updated {s['updated']}, removed {s['removed']}, unchanged {s['unchanged']}, "
        f"failed {s['failed']}; {s['chunks_total']} chunks ({s['chunks_embedded']} embedded) in {s['seconds']:.1f}s"
    )
    return report.exit_code


def flag_summary(found: dict[str, list[str]]) -> str:
    parts = []
    if found.get("instructions"):
        parts.append(
            f"{len(found['instructions'])} sentence(s) read as instructions to the assistant ({found['instructions'][0][:80]!r})"
        )
    if found.get("contacts"):
        parts.append(f"contacts not allowed: {', '.join(found['contacts'][:5])} (allow them in chat.allowed_contacts)")
    return "; ".join(parts)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from serve.auth import check_bind
    from serve.listen import bind_socket

    host = args.host or settings.server.host
    port = args.port or settings.server.port
    check_bind(settings, host)  # no keys: loopback only, refused before anything is bound
    sock = bind_socket(host, port)  # a busy port fails now, not after the serving stack and the models loaded
    try:
        from ingest.service import FolderIngester
        from serve.app import run_server

        # The admin API's uploads and re-ingests run ingestion; serve/ never imports ingest/, so it is handed in.
        run_server(settings, host, port, ingester=FolderIngester(settings), sock=sock)
    finally:
        sock.close()
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from ragtune.embedding import Embedder
    from ragtune.index import KnowledgeIndex
    from ragtune.retriever import Retriever

    retriever = Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)
    result = retriever.search(args.query, top_k=args.top_k, mode=args.mode)
    for rank, hit in enumerate(result.hits, start=1):
        c = hit.chunk
        print(f"{rank:2d}. [{hit.relevance:.2f}] {c.doc_id} > {c.section or c.title}  ({c.id})")
        print("    " + c.text.replace("\n", " ")[:160])
    print(f"index {result.version}, mode {result.mode}, {sum(result.timings_ms.values()):.0f} ms")
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "answers":
        return cmd_eval_answers(args, settings)
    if args.what != "retrieval":
        raise RagtuneError("say what to evaluate: `ragtune eval retrieval DATASET_DIR` or `ragtune eval answers QUESTIONS.jsonl`")
    from evaluation.retrieval import evaluate_retrieval, format_report
    from ragtune.embedders import resolve_embedding

    settings = settings.model_copy(update={"embedding": resolve_embedding(settings, args.embedder)})
    report = evaluate_retrieval(
        settings, args.dataset, split=args.split, mode=args.mode, max_queries=args.max_queries, progress=not args.json
    )
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def cmd_eval_answers(args: argparse.Namespace, settings: Settings) -> int:
    from evaluation.answers import evaluate_answers, format_report, load_set

    answer_set = load_set(args.questions).limited(args.limit)

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} questions and turns", end="" if done < total else "\n", file=sys.stderr, flush=True)

    report = evaluate_answers(settings, answer_set, mode=args.mode, url=args.url, progress=None if args.json else progress)
    print(json.dumps(report, indent=1, ensure_ascii=False) if args.json else format_report(report))
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from cli.train import cmd_train as train

    return train(args, settings)


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from cli.doctor import masked
    from serve.store.db import Database

    url = settings.store.url
    where = masked(url) if url else f"SQLite {Path(settings.data_dir) / 'conversations.sqlite3'}"
    db = Database.open(url, Path(settings.data_dir), pool_size=1)
    try:
        before, head = db.revision()
        if args.action == "upgrade":
            db.migrate()
            print(
                f"store {where}: already at revision {head}"
                if before == head
                else f"store {where}: now at revision {head} (was {before or 'not migrated'})"
            )
            return 0
        if before == head:
            print(f"store {where}: at revision {head} (the newest)")
            return 0
        print(
            f"store {where}: {f'at revision {before}' if before else 'not migrated yet'}, the newest is {head}: run `ragtune db upgrade`"
        )
        return 1
    finally:
        db.close()


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from ragtune.index import KnowledgeIndex

    index = KnowledgeIndex(settings)
    manifest = index.current_manifest()
    if manifest is None:
        raise RagtuneError(f"no index in {settings.data_dir}: run `ragtune ingest`")
    info = {
        "version": manifest.version,
        "created_at": manifest.created_at,
        "documents": len(manifest.documents),
        "chunks": manifest.chunk_count,
        "embedding_model": manifest.embedding_model,
        "source": manifest.source,
        "versions_on_disk": index.list_versions(),
    }
    print(json.dumps(info, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in info.items()))
    return 0


SETTINGS_DOC_HEAD = """# Settings reference

Generated from `ragtune/settings/` by `ragtune config --markdown > docs/settings.md` (`ragtune config --docs`
prints the same as text). Set them in `ragtune.toml` (`[section]` tables) or as environment variables
`RAGTUNE_<SECTION>__<FIELD>` (`RAGTUNE_DATA_DIR` for the top level).

| setting | default | description |
|---|---|---|"""


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        print(SETTINGS_DOC_HEAD)
        for name, default, description in describe():
            cell = description.replace("|", r"\|")
            print(f"| `{name}` | `{default}` | {cell} |")
        return 0
    if args.docs:
        for name, default, description in describe():
            print(f"{name} = {default}\n    {description}")
        return 0
    print(settings.model_dump_json(indent=1))
    return 0


COMMANDS = {
    "ingest": cmd_ingest,
    "serve": cmd_serve,
    "search": cmd_search,
    "eval": cmd_eval,
    "status": cmd_status,
    "config": cmd_config,
    "db": cmd_db,
    "train": cmd_train,
}

if __name__ == "__main__":
    sys.exit(main())
