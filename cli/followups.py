"""`ragtune train followups`: fit the follow-up model (which unit answers a follow-up) on the
company's example conversations, read by the chat service as it serves them, and write it into
the grounding model with its held-out report. Composes serve/ (the chat service reads the turns)
and train/ (the fit)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from ragtune.errors import UserInputError
from ragtune.settings import Settings

EXAMPLES = Path("train/examples")
DEFAULT_CONVERSATIONS = [EXAMPLES / "conversations.jsonl", EXAMPLES / "conversations_b.jsonl", EXAMPLES / "conversations_c.jsonl"]
HELP = (
    "Fit the follow-up model (which unit answers a question that leans on the conversation) on example "
    "conversations, as the chat service reads them; report it on held-out conversations."
)


def add_step(step) -> None:
    s = step("followups", HELP)
    s.add_argument(
        "--conversations",
        type=Path,
        nargs="+",
        default=DEFAULT_CONVERSATIONS,
        help="conversations (JSONL: turns of question, kind, doc, quotes)",
    )
    s.add_argument("--holdout", type=float, default=0.3, help="share of conversations held out for the report (default 0.3)")
    s.add_argument("--seed", type=int, default=13)
    s.add_argument(
        "--out", type=Path, help="where to write the grounding model with it (default: <data_dir>/grounding/grounding.json)"
    )


async def _collect(settings: Settings, conversations: list[dict[str, Any]]) -> list:
    import tempfile

    from ragtune.embedding import Embedder
    from ragtune.index import KnowledgeIndex
    from ragtune.progress import RichProgress
    from ragtune.retriever import Retriever
    from serve.chat import ChatService
    from serve.readings import reranks
    from serve.store import Database
    from serve.store.conversations import ConversationStore, new_session_id
    from train.followups import Example, label

    retriever = Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)
    examples: list[Example] = []
    with tempfile.TemporaryDirectory(prefix="ragtune-followups-") as tmp, RichProgress() as progress:
        db = Database.open(None, Path(tmp))
        try:
            service = ChatService(settings, retriever, None, ConversationStore(db))
            # The history is what the rules answer: the examples describe the rules' readings.
            service.grounding.followup = None
            seen: dict[str, Any] = {}
            service.on_followup = lambda question, pool, chosen: seen.update(pool=pool, chosen=chosen)
            progress.start("conversations", len(conversations))
            for conversation in conversations:
                session = new_session_id()
                for i, turn in enumerate(conversation["turns"]):
                    seen.clear()
                    await service.answer(turn["question"], session_id=session)
                    if i and turn["kind"] == "in_scope" and "pool" in seen:
                        pool = seen["pool"]
                        examples.append(Example(conversation["id"], pool.x, label(pool, turn), reranks(seen["chosen"])))
                progress.advance("conversations")
        finally:
            db.close()
    return examples


def followups(args: argparse.Namespace, settings: Settings) -> int:
    from ragtune.grounding.model import GroundingModel
    from ragtune.index import KnowledgeIndex
    from train.followups import fit_followups, load_conversations

    if not 0 < args.holdout < 0.9:
        raise UserInputError(f"--holdout {args.holdout}: give a share between 0 and 0.9, e.g. 0.3")
    missing = [str(p) for p in args.conversations if not p.is_file()]
    if missing:
        raise UserInputError(f"not found: {', '.join(missing)}")
    manifest = KnowledgeIndex(settings).current_manifest()
    if manifest is None:
        raise UserInputError(
            f"no index in {settings.data_dir}: run `ragtune ingest` first (the conversations are read against it)"
        )
    conversations = [c for path in args.conversations for c in load_conversations(path)]  # a located error otherwise
    settings = settings.model_copy(
        update={"chat": settings.chat.model_copy(update={"answer_mode": "extractive", "rewrite_followups": True})}
    )
    examples = asyncio.run(_collect(settings, conversations))
    try:
        result = fit_followups(examples, args.holdout, args.seed)
    except ValueError as exc:
        raise UserInputError(str(exc)) from None
    path = settings.chat.grounding_model
    model = GroundingModel.load(Path(path) if path else None)
    model.followup = result.model
    model.followup_report = result.report | {
        "files": [str(p) for p in args.conversations],
        "index_version": manifest.version,
    }
    out = args.out or Path(settings.data_dir) / "grounding" / "grounding.json"
    model.save(out)
    print(json.dumps(model.followup_report, indent=1))
    print(f"written to {out}; serve it with chat.grounding_model={out} (RAGTUNE_CHAT__GROUNDING_MODEL)")
    return 0
