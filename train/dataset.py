"""`ragtune train prepare`: grounded chat-format SFT records, rendered by the serving prompt builder.

Each record is `{"messages": [...], "meta": {...}}`. The system and user turns come from
`ragtune.prompt.training_messages` with chunks retrieved from the live index, exactly as the chat
service builds them; the assistant turn is the answer JSON of `ragtune.answer.Answer`.

RAFT-style assembly: an answerable record holds its oracle passage among `distractors` chunks
retrieved for the question, at a random position, and the target cites the oracle with a quote that
occurs in it. A `no_answer_share` of the records drops the oracle (and every chunk of its
document), so only distractors remain and the target is the hand-off answer.

Oracle passages: a company example names its document and a verbatim quote; the oracle is the
chunk of that document holding the quote. A Q/A pair without a document (Bitext, stored
conversations) gets a passage built from its reference answer when `data.qa_oracle` is `answer`.

`meta` keeps what the prompt was built from (question, chunks, history), so `validate_record`
re-renders it with the current prompt builder: a dataset made before a prompt change is caught.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from random import Random
from typing import Any

from ragtune.answer import Answer, Citation, parse_answer
from ragtune.documents import Chunk, Hit
from ragtune.errors import InvalidModelOutput
from ragtune.grounding.evidence import EvidenceSelector, evidence_chunks, top_evidence
from ragtune.progress import NullProgress, Progress
from ragtune.prompt import ContextChunk, Turn, build_messages, number_sources, training_messages
from ragtune.settings import ChatSettings
from train.config import TrainConfig
from train.sources import (
    DatasetError,
    Pair,
    default_placeholders,
    fill_placeholders,
    read_conversations,
    read_examples,
    read_heldout,
    read_jsonl,
    read_qa,
    shorten,
)

HANDOFF_ANSWERS = [
    "I'm sorry, I couldn't find that in our help articles, so I'd rather not guess. A colleague from our support team will take over and help you.",
    "Thanks for asking! Our help articles don't cover this, so I'm handing you over to a colleague from our support team who can answer it.",
    "I don't have reliable information about that in our help articles. Let me pass you to a colleague from our support team so you get the right answer.",
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def _fraction(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def first_sentence(text: str, limit: int = 300) -> str:
    sentence = _SENTENCE.split(" ".join(text.split()))[0]
    return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0]


class Assembler:
    """Turns pairs into records against one retriever (the live index)."""

    def __init__(self, config: TrainConfig, retriever: Any, company: str):
        self.config = config
        self.data = config.data
        self.retriever = retriever
        self.company = company
        self.snapshot = retriever.snapshot()
        self.by_doc: dict[str, list[Chunk]] = {}
        for chunk in self.snapshot.chunks:
            self.by_doc.setdefault(chunk.doc_id, []).append(chunk)
        self.placeholders = default_placeholders(company) | self.data.placeholders
        self.selector = EvidenceSelector(retriever.embedder)
        self.chat = ChatSettings()  # the evidence defaults the chat service selects with

    def oracle_for(self, pair: Pair) -> Chunk | None:
        if pair.kind == "example":
            chunks = self.by_doc.get(pair.doc or "")
            if not chunks:
                raise DatasetError(f"{pair.source}: document '{pair.doc}' is not in the index {self.snapshot.version}")
            for chunk in chunks:
                if norm(pair.quote or "") in norm(chunk.text):
                    return chunk
            raise DatasetError(f"{pair.source}: quote is not in any chunk of '{pair.doc}': {pair.quote!r}")
        if self.data.qa_oracle == "skip":
            return None
        text = shorten(fill_placeholders(pair.answer, self.placeholders), self.data.max_answer_words)
        origin = "qa" if pair.kind == "qa" else "conversations"
        return Chunk(
            id=Chunk.make_id(f"{origin}/{pair.source}", 0, text),
            doc_id=f"{origin}/{Path(pair.source.split(':')[0]).name}",
            text=text,
            title=pair.topic or "Customer support",
            section="",
            position=0,
        )

    def record(self, pair: Pair, no_answer: bool, rng: Random) -> dict | None:
        oracle = self.oracle_for(pair)
        if oracle is None:
            return None
        answer_text = shorten(fill_placeholders(pair.answer, self.placeholders), self.data.max_answer_words)
        hits = self.retriever.search(pair.question, top_k=self.data.distractors + 4).hits
        fact = norm(pair.quote or first_sentence(oracle.text))
        # A chunk of the oracle's document, or one holding its quote, would answer the question too.
        distractors = [h.chunk for h in hits if h.chunk.doc_id != oracle.doc_id and fact not in norm(h.chunk.text)]
        chunks = distractors[: self.data.distractors]
        if no_answer:
            if not chunks:
                return None
        else:
            chunks.insert(rng.randint(0, len(chunks)), oracle)
        # The model is shown what serving shows it: the evidence sentences the server selects from
        # these chunks, numbered S1, S2, ... (ragtune.grounding.evidence + ragtune.prompt.number_sources).
        ranked = self.selector.score(pair.question, [Hit(chunk=c, score=1.0, relevance=1.0) for c in chunks])
        evidence = top_evidence(ranked, self.chat.evidence_sentences, self.selector.model.support)
        if no_answer:
            answer = Answer(answer=rng.choice(HANDOFF_ANSWERS), citations=[], confidence="low", handoff=True)
        else:
            fact = norm(pair.quote or first_sentence(oracle.text))
            own = [e for e in ranked if e.chunk_id == oracle.id]
            if not own:
                return None
            support = next((e for e in own if fact in norm(e.sentence) or norm(e.sentence) in fact), own[0])
            if support not in evidence:  # the right sentence is among what the model sees, as when retrieval works
                evidence = [*evidence[: self.chat.evidence_sentences - 1], support]
                evidence.sort(key=lambda e: e.score, reverse=True)
        sources = number_sources(evidence_chunks(evidence))
        if not no_answer:
            short = sources.chunks[evidence.index(support)].id
            answer = Answer(
                answer=answer_text, citations=[Citation(id=short, quote=support.sentence)], confidence="high", handoff=False
            )
        history = [Turn(role, content) for role, content in pair.history]  # type: ignore[arg-type]
        context = sources.chunks
        messages = training_messages(pair.question, context, history, self.company, answer)
        return {
            "messages": messages,
            "meta": {
                "source": pair.source,
                "origin": pair.kind,
                "kind": "no_answer" if no_answer else "grounded",
                "question": pair.question,
                "reference": answer_text,
                "oracle": None if no_answer else short,  # the source id (S1...) the target cites
                "doc": pair.doc,
                "chunks": [asdict(c) for c in context],
                "history": pair.history,
            },
        }


def validate_record(data: Any, where: str, company: str) -> None:
    """Raise DatasetError (with `where`) unless the record is well formed, grounded and current."""
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise DatasetError(f"{where}: a record is an object with a 'messages' list")
    messages = data["messages"]
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if len(roles) < 3 or roles[0] != "system" or roles[-1] != "assistant" or roles[-2] != "user":
        raise DatasetError(f"{where}: messages must be system, [user, assistant]..., user, assistant; got {roles}")
    if any(not isinstance(m.get("content"), str) for m in messages):
        raise DatasetError(f"{where}: every message needs a string 'content'")
    try:
        answer = parse_answer(messages[-1]["content"])
    except InvalidModelOutput as exc:
        raise DatasetError(f"{where}: assistant answer fails the schema: {exc}") from exc
    meta = data.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("chunks"), list):
        return  # a bare chat record: the checks above are all that can be made
    chunks = {c["id"]: c for c in meta["chunks"]}
    for citation in answer.citations:
        chunk = chunks.get(citation.id)
        if chunk is None:
            raise DatasetError(f"{where}: citation {citation.id} names no chunk of the prompt")
        if norm(citation.quote) not in norm(chunk["text"]):
            raise DatasetError(f"{where}: quote for {citation.id} is not in its chunk: {citation.quote!r}")
    history = [Turn(r, c) for r, c in meta.get("history") or []]
    expected = build_messages(meta["question"], [ContextChunk(**c) for c in meta["chunks"]], history, company)
    if messages[:-1] != expected:
        raise DatasetError(
            f"{where}: the prompt differs from what the serving prompt builder renders now; run `ragtune train prepare` again"
        )


def token_length(tokenizer: Any, messages: list[dict]) -> int:
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


def prepare(config: TrainConfig, retriever: Any, tokenizer: Any, company: str, progress: Progress | None = None) -> dict:
    """Build, validate, deduplicate and split the dataset; write it to config.data.output."""
    progress = progress or NullProgress()
    data = config.data
    pairs: list[Pair] = []
    for source in data.qa:
        pairs += read_qa(source.path, source.limit, config.seed, source.question_field, source.answer_field)
    for path in data.examples:
        pairs += read_examples(path)
    for path in data.conversations:
        pairs += read_conversations(path)
    heldout = {norm(q["question"]) for q in read_heldout(data.heldout)} if data.heldout else set()

    dropped: Counter = Counter()
    unique: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    for pair in pairs:
        key = (norm(pair.question), norm(pair.answer))
        if key in seen:
            dropped["duplicate"] += 1
            continue
        if key[0] in heldout:
            dropped["held-out question"] += 1
            continue
        seen.add(key)
        unique.append(pair)

    assembler = Assembler(config, retriever, company)
    rng = Random(config.seed)
    splits: dict[str, list[dict]] = {"train": [], "eval": []}
    lengths: list[int] = []
    progress.start("prepare", len(unique))
    for pair in unique:
        no_answer = rng.random() < data.no_answer_share
        record = assembler.record(pair, no_answer, rng)
        progress.advance("prepare")
        if record is None:
            dropped["no oracle or no distractor"] += 1
            continue
        validate_record(record, pair.source, company)
        n_tokens = token_length(tokenizer, record["messages"])
        if n_tokens > config.max_length:
            dropped[f"longer than max_length {config.max_length}"] += 1
            continue
        record["meta"]["tokens"] = n_tokens
        lengths.append(n_tokens)
        split = "eval" if _fraction(config.seed, norm(pair.question)) < data.eval_share else "train"
        splits[split].append(record)

    out = data.output
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for split, records in splits.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        (out / f"{split}.jsonl").write_text(text, encoding="utf-8")
        digest.update(text.encode())
    table: Counter = Counter()
    for split, records in splits.items():
        for r in records:
            table[(split, r["meta"]["origin"], r["meta"]["kind"])] += 1
    summary = {
        "pairs_read": len(pairs),
        "records": {k: len(v) for k, v in splits.items()},
        "by_split_origin_kind": {" / ".join(k): v for k, v in sorted(table.items())},
        "dropped": dict(dropped),
        "tokens_mean": round(sum(lengths) / len(lengths), 1) if lengths else 0,
        "tokens_max": max(lengths, default=0),
        "max_length": config.max_length,
        "index_version": assembler.snapshot.version,
        "dataset_hash": digest.hexdigest()[:16],
        "seed": config.seed,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"{'split / source / kind':<40} records"]
    lines += [f"{k:<40} {v:>7}" for k, v in summary["by_split_origin_kind"].items()]
    lines.append(f"{'total train / eval':<40} {summary['records']['train']:>7} / {summary['records']['eval']}")
    for reason, n in summary["dropped"].items():
        lines.append(f"{'dropped: ' + reason:<40} {n:>7}")
    lines.append(
        f"tokens per record: mean {summary['tokens_mean']}, max {summary['tokens_max']} (max_length {summary['max_length']})"
    )
    lines.append(f"dataset hash {summary['dataset_hash']}, index {summary['index_version']}")
    return "\n".join(lines)


def validate_file(path: Path, company: str, tokenizer: Any = None, max_length: int | None = None) -> int:
    """Check every record of a dataset file; the first problem raises DatasetError with its line."""
    count = 0
    for number, data in read_jsonl(path):
        where = f"{path}:{number}"
        validate_record(data, where, company)
        if tokenizer is not None and max_length is not None:
            n = token_length(tokenizer, data["messages"])
            if n > max_length:
                raise DatasetError(f"{where}: record is {n} tokens, longer than max_length {max_length}")
        count += 1
    return count
