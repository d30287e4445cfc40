"""`ragtune train prepare`: grounded chat-format SFT records, rendered by the serving prompt builder.

Each record is `{"messages": [...], "meta": {...}}`. The system and user turns come from
`ragtune.prompt.training_messages` with the evidence the chat service would select, exactly as it
builds them (in the config's prompt style); the assistant turn is the model's whole job, a
`ragtune.answer.ModelReply`: the answer text and the source id it restates.

RAFT-style assembly: a record holds its oracle passage among `distractors` chunks retrieved for
the question; the evidence sentences the server would select from them are what the model sees,
with the oracle's supporting sentence always among them, filled up to `chat.evidence_sentences`
with the distractors' best sentences, best first as serving orders them.

A target is trained on only if serving would accept it: it passes the verification serving applies
(`ragtune.grounding.verify.verify_answer`) against the evidence the record shows (a target that
fails is cut back to its longest passing run of sentences, else dropped, with the reasons
counted); it has no placeholder without a company value; a reference cut short inside a list is
dropped. There are no hand-off records: the server decides hand-offs, the model never does.

Oracle passages: a company example names its document and a verbatim quote; the oracle is the
chunk of that document holding the quote. A Q/A pair without a document (Bitext, stored
conversations) gets a passage built from its reference answer when `data.qa_oracle` is `answer`.
A stored answer made of the documents' own sentences (an extractive answer) is never a target.

`meta` keeps what the prompt was built from (question, chunks, history, prompt style), so
`validate_record` re-renders and re-verifies it with the current code: a dataset made before a
prompt or verifier change is caught.
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

from ragtune.answer import ModelReply, parse_reply
from ragtune.documents import Chunk, Hit
from ragtune.errors import InvalidModelOutput
from ragtune.grounding.evidence import EvidenceSelector, evidence_chunks, top_evidence
from ragtune.grounding.verify import content_stems, verify_answer
from ragtune.progress import NullProgress, Progress
from ragtune.prompt import (
    ContextChunk,
    PromptStyle,
    Turn,
    build_messages,
    number_sources,
    prompt_rules,
    training_messages,
)
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
    rephrase,
    shorten,
    unfilled_placeholders,
)

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*\u2022])\s+")


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def _fraction(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def first_sentence(text: str, limit: int = 300) -> str:
    sentence = _SENTENCE.split(" ".join(text.split()))[0]
    return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0]


def verify_target(text: str, question: str, chunks: list[ContextChunk], company: str) -> list[str]:
    """What serving's verification says of `text` as the reply to `question` over these sources
    (the evidence sentences, best first, as `number_sources` numbers them)."""
    return verify_answer(
        text,
        question,
        [c.text for c in chunks],
        allowed_names=company.split(),
        secrets=prompt_rules(),
        headings=[f"{c.title} {c.section}" for c in chunks],
    )


def unsupported_sentence(text: str, question: str, chunks: list[ContextChunk], company: str) -> bool:
    """Whether a sentence of `text` is mostly words the sources and the question lack.

    Serving checks support over the whole reply, so one invented sentence among supported ones
    ("The seat is freed at once.") passes there; a target is held to it sentence by sentence, so
    the model is never taught to add one."""
    pool = content_stems(" ".join(c.text for c in chunks)) | content_stems(question) | content_stems(company)
    for sentence in _SENTENCE.split(" ".join(text.split())):
        stems = content_stems(sentence)
        if stems and len(stems & pool) < 0.5 * len(stems):
            return True
    return False


def passing_target(text: str, question: str, chunks: list[ContextChunk], company: str) -> tuple[str | None, list[str]]:
    """`text` if it passes; else its longest leading run of sentences that passes; else None and
    the reasons the whole text failed."""

    def reasons_for(candidate: str) -> list[str]:
        found = verify_target(candidate, question, chunks, company)
        return found or (["unsupported sentence"] if unsupported_sentence(candidate, question, chunks, company) else [])

    reasons = reasons_for(text)
    if not reasons:
        return text, []
    sentences = _SENTENCE.split(" ".join(text.split()))
    for end in range(len(sentences) - 1, 0, -1):
        shorter = " ".join(sentences[:end])
        if not reasons_for(shorter):
            return shorter, []
    return None, reasons


def used_sources(target: str, question: str, chunks: list[ContextChunk], oracle: str) -> list[str]:
    """The oracle's id, then any other source whose content words the target mostly restates."""
    said = content_stems(target) - content_stems(question)
    used = [oracle]
    for chunk in chunks:
        stems = content_stems(chunk.text) - content_stems(question)
        if chunk.id != oracle and stems and len(stems & said) >= max(2, 0.5 * len(stems)):
            used.append(chunk.id)
    return used


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
        self.index_text = norm(" ".join(c.text for c in self.snapshot.chunks))
        self.placeholders = default_placeholders(company) | self.data.placeholders
        self.selector = EvidenceSelector(retriever.embedder)
        self.chat = ChatSettings()  # the evidence defaults the chat service selects with

    def oracle_for(self, pair: Pair, text: str) -> Chunk | None:
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
        origin = "qa" if pair.kind == "qa" else "conversations"
        return Chunk(
            id=Chunk.make_id(f"{origin}/{pair.source}", 0, text),
            doc_id=f"{origin}/{Path(pair.source.split(':')[0]).name}",
            text=text,
            title=pair.topic or "Customer support",
            section="",
            position=0,
        )

    def extractive(self, text: str) -> bool:
        """Whether `text` is the documents' own sentences (an extractive answer, not phrasing)."""
        sentences = [norm(s) for s in _SENTENCE.split(" ".join(text.split())) if len(s.split()) >= 4]
        return bool(sentences) and all(s.rstrip(".!?") in self.index_text for s in sentences)

    def target_text(self, pair: Pair) -> tuple[str | None, str | None]:
        """The reference answer as a target, or None and why it is not one."""
        missing = unfilled_placeholders(pair.answer, self.placeholders)
        if missing:
            return None, "unfilled placeholder"
        full = fill_placeholders(pair.answer, self.placeholders)
        text = shorten(full, self.data.max_answer_words)
        if norm(text) != norm(full) and (_LIST_ITEM.search(full) or text.rstrip().endswith(":")):
            return None, "list cut by max_answer_words"
        if text.rstrip().endswith(":"):
            return None, "list cut by max_answer_words"
        if pair.kind == "conversation" and self.extractive(text):
            return None, "extractive answer"
        return text, None

    def record(self, pair: Pair, rng: Random) -> dict | str:
        """A record, or the reason the pair gives none."""
        answer_text, why = self.target_text(pair)
        if answer_text is None:
            return why or "no target"
        oracle = self.oracle_for(pair, answer_text)
        if oracle is None:
            return "no oracle (qa_oracle: skip)"
        hits = self.retriever.search(pair.question, top_k=self.data.distractors + 4).hits
        fact = norm(pair.quote or first_sentence(oracle.text))
        # A chunk of the oracle's document, or one holding its quote, would answer the question too.
        distractors = [h.chunk for h in hits if h.chunk.doc_id != oracle.doc_id and fact not in norm(h.chunk.text)]
        chunks = distractors[: self.data.distractors]
        chunks.insert(rng.randint(0, len(chunks)), oracle)
        # The model is shown what serving shows it: the evidence sentences the server selects from
        # these chunks, numbered S1, S2, ... (ragtune.grounding.evidence + ragtune.prompt.number_sources).
        # Scored as for a question nobody wrote down before: the known questions about the oracle's
        # document are hidden, or the selector would recall this very example and always rank the
        # oracle first (a model tuned on that learns "S1 answers" rather than to read the evidence).
        hits = [Hit(chunk=c, score=1.0, relevance=1.0) for c in chunks]
        ranked = self.selector.score(pair.question, hits, hide_doc=oracle.doc_id)
        evidence = top_evidence(ranked, self.chat.evidence_sentences, self.selector.model.support)
        own = [e for e in ranked if e.chunk_id == oracle.id]
        if not own:
            return "oracle has no evidence sentence"
        support = next((e for e in own if fact in norm(e.sentence) or norm(e.sentence) in fact), own[0])
        if support not in evidence:  # the right sentence is among what the model sees, as when retrieval works
            evidence = [*evidence[: self.chat.evidence_sentences - 1], support]
        # A confident selector shows one sentence; the model is also shown the next best sentences of
        # the distractors, so that every record asks it to read which source answers. The order stays
        # serving's, best first: verification (like serving's) takes S1 for the selector's best.
        shown = {e.sentence for e in evidence}
        for e in ranked:
            if len(evidence) >= self.chat.evidence_sentences:
                break
            if e.hit.chunk.doc_id != oracle.doc_id and e.sentence not in shown:
                evidence.append(e)
                shown.add(e.sentence)
        evidence.sort(key=lambda e: e.score, reverse=True)
        sources = number_sources(evidence_chunks(evidence))
        context = sources.chunks
        target, reasons = passing_target(answer_text, pair.question, context, self.company)
        if target is None and pair.kind == "example":
            # The written answer says more than the evidence shows: the supporting sentence itself,
            # as the source states it, is a reply serving accepts (when it passes, as any target must).
            target, _ = passing_target(support.sentence, pair.question, context, self.company)
        if target is None:
            return "fails verification: " + ",".join(sorted(set(reasons)))
        short = context[evidence.index(support)].id
        reply = ModelReply(answer=target, sources=used_sources(target, pair.question, context, short))
        history = [Turn(role, content) for role, content in pair.history]  # type: ignore[arg-type]
        style = self.config.prompt
        messages = training_messages(pair.question, context, history, self.company, reply, style)
        return {
            "messages": messages,
            "meta": {
                "source": pair.source,
                "origin": pair.kind,
                "kind": "grounded",
                "prompt": style,
                "question": pair.question,
                "reference": answer_text,
                # as written; trimmed (its longest passing run of sentences); or the evidence sentence
                "target": "as written" if target == answer_text else "trimmed" if norm(target) in norm(answer_text) else "source",
                "oracle": short,  # the source id (S1...) the target names
                "doc": pair.doc,
                "chunks": [asdict(c) for c in context],
                "history": pair.history,
            },
        }


def validate_record(data: Any, where: str, company: str) -> None:
    """Raise DatasetError (with `where`) unless the record is well formed, verified and current."""
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise DatasetError(f"{where}: a record is an object with a 'messages' list")
    messages = data["messages"]
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if len(roles) < 3 or roles[0] != "system" or roles[-1] != "assistant" or roles[-2] != "user":
        raise DatasetError(f"{where}: messages must be system, [user, assistant]..., user, assistant; got {roles}")
    if any(not isinstance(m.get("content"), str) for m in messages):
        raise DatasetError(f"{where}: every message needs a string 'content'")
    try:
        reply = parse_reply(messages[-1]["content"])
    except InvalidModelOutput as exc:
        raise DatasetError(f"{where}: assistant reply fails the schema: {exc}") from exc
    meta = data.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("chunks"), list):
        return  # a bare chat record: the checks above are all that can be made
    chunks = [ContextChunk(**c) for c in meta["chunks"]]
    ids = {c.id for c in chunks}
    for short in reply.sources:
        if short not in ids:
            raise DatasetError(f"{where}: source {short} names no source of the prompt")
    reasons = verify_target(reply.answer, meta["question"], chunks, company)
    if unsupported_sentence(reply.answer, meta["question"], chunks, company):
        reasons.append("unsupported sentence")
    if reasons:
        raise DatasetError(f"{where}: the target fails serving's verification ({', '.join(reasons)}): {reply.answer[:80]!r}")
    history = [Turn(r, c) for r, c in meta.get("history") or []]
    style: PromptStyle = "short" if meta.get("prompt") == "short" else "full"
    expected = build_messages(meta["question"], chunks, history, company, style)
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
        pairs += read_qa(source.path, source.limit, config.seed, source.question_field, source.answer_field, source.intents)
    for path in data.examples:
        for pair in read_examples(path):
            pairs.append(pair)
            for i, question in enumerate(rephrase(pair.question, data.paraphrases, config.seed), start=1):
                pairs.append(Pair(question, pair.answer, f"{pair.source}~{i}", pair.kind, pair.doc, pair.quote))
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
        record = assembler.record(pair, rng)
        progress.advance("prepare")
        if isinstance(record, str):
            dropped[record] += 1
            continue
        validate_record(record, pair.source, company)
        n_tokens = token_length(tokenizer, record["messages"])
        if n_tokens > config.max_length:
            dropped[f"longer than max_length {config.max_length}"] += 1
            continue
        record["meta"]["tokens"] = n_tokens
        lengths.append(n_tokens)
        # Rewordings of one question share its split, so eval loss is never on a trained fact's twin.
        split = "eval" if _fraction(config.seed, norm(pair.answer)) < data.eval_share else "train"
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
            table[(split, r["meta"]["origin"], r["meta"]["target"])] += 1
    summary = {
        "pairs_read": len(pairs),
        "records": {k: len(v) for k, v in splits.items()},
        "by_split_origin_kind": {" / ".join(k): v for k, v in sorted(table.items())},
        "dropped": dict(dropped),
        "tokens_mean": round(sum(lengths) / len(lengths), 1) if lengths else 0,
        "tokens_max": max(lengths, default=0),
        "max_length": config.max_length,
        "prompt": config.prompt,
        "index_version": assembler.snapshot.version,
        "dataset_hash": digest.hexdigest()[:16],
        "seed": config.seed,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"{'split / source / target':<40} records"]
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
