"""Training pairs for the retriever: (query, positive passage, hard negatives), and the dev sets.

Three kinds of source, each turned into the same `Example`:
- a BEIR-layout training split: its judged queries are split by a fixed seed into fit / dev / test
  (written out as a BEIR folder, so `ragtune eval retrieval` scores the test queries); positives are
  the judged documents, hard negatives the BM25 top-ranked documents that are not judged relevant;
- the company's example pairs (`question`, `doc`, `quote`): the positive is the live index's chunk
  of `doc` that holds `quote`, hard negatives the live index's hybrid hits from other documents;
- answers customers rated up in the chat API's store: the positive is the live chunk that best
  matches the answer (answers are built from the evidence sentences), hand-off answers are skipped.

Dev sets hold what the dev score needs to re-rank without touching the live index: each dev
query's candidates (texts), its BM25 ranking of them, and the judged documents.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

from ragtune.errors import UserInputError
from train.retriever_config import BeirSource, RetrieverConfig
from train.sources import DatasetError, read_examples, read_heldout


@dataclass
class Example:
    query: str
    positive: str
    negatives: list[str]
    source: str  # "<name>:<where>" for error messages and counts


@dataclass
class DevSet:
    """Dev queries to re-rank: `units` are the candidate texts (documents or chunks), `doc_of` maps
    a unit to its document, `pool` names each query's candidates (None: every unit), `bm25` is each
    query's BM25 ranking of units, `qrels` the judged documents."""

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    units: dict[str, str]
    doc_of: dict[str, str]
    bm25: dict[str, list[str]]
    pool: dict[str, list[str]] | None = None


@dataclass
class RetrieverData:
    examples: list[Example]
    dev: list[DevSet]
    counts: dict[str, int] = field(default_factory=dict)
    splits: dict[str, Any] = field(default_factory=dict)  # where each BEIR split was written

    def dataset_hash(self) -> str:
        h = hashlib.sha256()
        for e in self.examples:
            h.update(json.dumps([e.query, e.positive, e.negatives]).encode())
        for d in self.dev:
            h.update(json.dumps([d.name, sorted(d.queries)]).encode())
        return h.hexdigest()[:16]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


# ---- BEIR ------------------------------------------------------------------------------------
def read_beir(folder: Path, split: str) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """(documents as title + text, queries, qrels) of a BEIR folder."""
    folder = Path(folder)
    paths = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"]
    for path in paths:
        if not path.is_file():
            raise DatasetError(f"{path} is missing: a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    from train.sources import read_jsonl

    docs = {str(d["_id"]): f"{d.get('title') or ''}\n{d.get('text') or ''}".strip() for _, d in read_jsonl(paths[0])}
    queries = {str(q["_id"]): str(q["text"]) for _, q in read_jsonl(paths[1])}
    qrels: dict[str, dict[str, int]] = {}
    with open(paths[2], encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or row[0] == "query-id":
                continue
            if len(row) < 3 or not row[2].lstrip("-").isdigit():
                raise DatasetError(f"{paths[2]}:{number}: expected query-id, corpus-id, score")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return docs, queries, qrels


def split_queries(qids: list[str], dev_share: float, test_share: float, seed: int) -> dict[str, list[str]]:
    """fit / dev / test by a fixed seed: the ids sorted, shuffled with Random(seed), cut test first."""
    order = sorted(qids)
    Random(seed).shuffle(order)
    n_test, n_dev = round(len(order) * test_share), round(len(order) * dev_share)
    return {"test": sorted(order[:n_test]), "dev": sorted(order[n_test : n_test + n_dev]), "fit": sorted(order[n_test + n_dev :])}


def write_split(source: BeirSource, qrels: dict[str, dict[str, int]], parts: dict[str, list[str]], seed: int) -> dict:
    """The split as a BEIR folder: corpus and queries linked, qrels/{fit,dev,test}.tsv, split.json."""
    out = Path(source.output)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        link, target = out / name, (Path(source.path) / name).resolve()
        if link.is_symlink() or link.exists():
            if link.resolve() == target:
                continue
            link.unlink()
        link.symlink_to(target)
    for part, ids in parts.items():
        with open(out / "qrels" / f"{part}.tsv", "w", encoding="utf-8") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            for qid in ids:
                for doc, score in sorted(qrels[qid].items()):
                    handle.write(f"{qid}\t{doc}\t{score}\n")
    info = {
        "source": str(source.path),
        "split": source.split,
        "seed": seed,
        "dev_share": source.dev_share,
        "test_share": source.test_share,
        "queries": {part: len(ids) for part, ids in parts.items()},
        "method": "judged query ids sorted, shuffled with random.Random(seed), test cut first, then dev, the rest fit",
    }
    (out / "split.json").write_text(json.dumps(info, indent=1))
    return info | {"output": str(out)}


class Bm25Corpus:
    """BM25 over a document collection, tokenized as the index does (ragtune.index.bm25_tokenize)."""

    def __init__(self, docs: dict[str, str]):
        import bm25s

        from ragtune.index import bm25_tokenize

        self.ids = list(docs)
        self.model = bm25s.BM25()
        self.model.index(bm25_tokenize([docs[i] for i in self.ids]), show_progress=False)

    def rank(self, queries: list[str], k: int) -> list[list[str]]:
        from ragtune.index import bm25_tokenize

        tokens = bm25_tokenize(queries)
        docs, scores = self.model.retrieve(tokens, k=min(k, len(self.ids)), show_progress=False, n_threads=1)
        return [
            [self.ids[int(d)] for d, s in zip(row, srow, strict=True) if s > 0] for row, srow in zip(docs, scores, strict=True)
        ]


def _negatives(ranked: list[str], exclude: set[str], config: RetrieverConfig, rng: Random) -> list[str]:
    candidates = [d for d in ranked if d not in exclude][config.skip_top : config.skip_top + config.negative_depth]
    return rng.sample(candidates, min(config.negatives, len(candidates)))


def beir_data(source: BeirSource, config: RetrieverConfig, heldout: set[str]) -> tuple[list[Example], DevSet, dict]:
    docs, queries, qrels = read_beir(source.path, source.split)
    judged = [q for q in qrels if q in queries and any(s > 0 for s in qrels[q].values())]
    if not judged:
        raise DatasetError(f"no query in {source.path}/queries.jsonl has a positive judgement in qrels/{source.split}.tsv")
    parts = split_queries(judged, source.dev_share, source.test_share, config.seed)
    info = write_split(source, qrels, parts, config.seed)
    fit = [q for q in parts["fit"] if _norm(queries[q]) not in heldout][: source.max_queries]
    bm25 = Bm25Corpus(docs)
    rng = Random(config.seed)
    name = Path(source.path).name
    examples: list[Example] = []
    depth = config.skip_top + config.negative_depth + max(len(v) for v in qrels.values())
    for qid, ranked in zip(fit, bm25.rank([queries[q] for q in fit], depth), strict=True):
        positives = [d for d, s in sorted(qrels[qid].items()) if s > 0 and d in docs]
        negatives = _negatives(ranked, set(qrels[qid]), config, rng)
        for doc in positives:  # a query with two relevant documents gives two examples
            examples.append(Example(queries[qid], docs[doc], [docs[n] for n in negatives], f"{name}:{qid}"))
    dev_ids = parts["dev"]
    rankings = bm25.rank([queries[q] for q in dev_ids], config.dev_pool) if dev_ids else []
    pool = {q: list(dict.fromkeys(r + [d for d in qrels[q] if d in docs])) for q, r in zip(dev_ids, rankings, strict=True)}
    units = {d: docs[d] for ids in pool.values() for d in ids}
    dev = DevSet(
        name=name,
        queries={q: queries[q] for q in dev_ids},
        qrels={q: qrels[q] for q in dev_ids},
        units=units,
        doc_of={d: d for d in units},
        bm25={q: r for q, r in zip(dev_ids, rankings, strict=True)},
        pool=pool,
    )
    return examples, dev, info


# ---- the company's own pairs, over the live index -------------------------------------------
def _positive_chunk(snapshot: Any, doc: str, quote: str, where: str) -> Any:
    chunks = [c for c in snapshot.chunks if c.doc_id == doc]
    if not chunks:
        raise DatasetError(f"{where}: document {doc!r} is not in the live index ({snapshot.version}); ingest it or fix 'doc'")
    wanted = _norm(quote)
    holding = [c for c in chunks if wanted in _norm(c.text)]
    if holding:
        return holding[0]
    words = set(wanted.split())  # the quote spans two chunks, or was reformatted by the parser
    return max(chunks, key=lambda c: len(words & set(_norm(c.text).split())))


def company_split(paths: list[Path], config: RetrieverConfig, heldout: set[str]) -> tuple[list[Any], set[int]]:
    """The company pairs (held-out questions left out) and the indexes of the dev share, by the seed."""
    pairs = [p for path in paths for p in read_examples(path) if _norm(p.question) not in heldout]
    order = list(range(len(pairs)))
    Random(config.seed).shuffle(order)
    return pairs, set(order[: round(len(pairs) * config.data.examples_dev_share)])


def company_dev_pairs(config: RetrieverConfig) -> list[Any]:
    """The company dev pairs of a config (what model selection and the fusion weights are chosen on)."""
    heldout = {_norm(q["question"]) for q in read_heldout(config.data.heldout)} if config.data.heldout else set()
    pairs, dev_idx = company_split(list(config.data.examples), config, heldout)
    return [p for i, p in enumerate(pairs) if i in dev_idx]


def example_data(
    paths: list[Path], retriever: Any, config: RetrieverConfig, heldout: set[str]
) -> tuple[list[Example], DevSet | None]:
    """Company pairs: fit examples with mined negatives, and the dev share as a dev set."""
    pairs, dev_idx = company_split(paths, config, heldout)
    if not pairs:
        return [], None
    snapshot = retriever.snapshot()
    rng = Random(config.seed + 1)
    examples: list[Example] = []
    dev_queries: dict[str, str] = {}
    dev_qrels: dict[str, dict[str, int]] = {}
    for i, pair in enumerate(pairs):
        assert pair.doc is not None and pair.quote is not None
        positive = _positive_chunk(snapshot, pair.doc, pair.quote, pair.source)
        if i in dev_idx:
            dev_queries[pair.source], dev_qrels[pair.source] = pair.question, {pair.doc: 1}
            continue
        hits = retriever.search(pair.question, top_k=config.skip_top + config.negative_depth).hits
        quote = _norm(pair.quote)
        ranked = [h.chunk.id for h in hits if h.chunk.doc_id != pair.doc and quote not in _norm(h.chunk.text)]
        for _ in range(config.data.examples_repeat):
            negatives = _negatives(ranked, set(), config, rng)
            texts = [snapshot.by_id[n].embedding_text() for n in negatives]
            examples.append(Example(pair.question, positive.embedding_text(), texts, pair.source))
    dev = None
    if dev_queries:
        bm25 = {q: [cid for cid, _ in snapshot.bm25_search(text, len(snapshot.chunks))] for q, text in dev_queries.items()}
        dev = DevSet(
            name="company",
            queries=dev_queries,
            qrels=dev_qrels,
            units={c.id: c.embedding_text() for c in snapshot.chunks},
            doc_of={c.id: c.doc_id for c in snapshot.chunks},
            bm25=bm25,
        )
    return examples, dev


def rated_up_answers(path: Path) -> list[tuple[str, str, str]]:
    """(question, answer, where) of every answer rated up in a chat API store (its SQLite file).

    Reads the `messages` and `feedback` tables of serve/store/conversations.py directly, so `train/`
    stays free of serving imports: the n-th assistant message of a session is its turn n.
    """
    if not path.is_file():
        raise DatasetError(f"cannot read {path}: no such file")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        up = {(s, int(t)) for s, t in db.execute("SELECT session_id, turn FROM feedback WHERE rating = 'up'")}
        rows = db.execute("SELECT session_id, role, content FROM messages ORDER BY session_id, seq").fetchall()
    except sqlite3.DatabaseError as exc:
        raise DatasetError(f"{path}: not a ragtune conversation store ({exc})") from exc
    finally:
        db.close()
    out: list[tuple[str, str, str]] = []
    turns: dict[str, int] = {}
    asked: dict[str, str] = {}
    for session, role, content in rows:
        if role == "user":
            asked[session] = content
        elif role == "assistant" and session in asked:
            turn = turns.get(session, 0)
            turns[session] = turn + 1
            if (session, turn) in up:
                out.append((asked.pop(session), content, f"{path}:{session}#{turn}"))
    return out


def conversation_examples(
    paths: list[Path], retriever: Any, config: RetrieverConfig, heldout: set[str], skip_answers: set[str]
) -> list[Example]:
    """Rated-up answers: the positive is the live chunk that matches the answer best (BM25 on the
    answer text: extractive and verified answers are made of evidence sentences)."""
    if not paths:
        return []
    snapshot = retriever.snapshot()
    skip = {_norm(a) for a in skip_answers}
    rng = Random(config.seed + 2)
    examples: list[Example] = []
    for path in paths:
        for question, answer, where in rated_up_answers(path):
            if _norm(question) in heldout or _norm(answer) in skip:
                continue
            matched = snapshot.bm25_search(answer, 1)
            if not matched:
                continue
            positive = snapshot.by_id[matched[0][0]]
            hits = retriever.search(question, top_k=config.skip_top + config.negative_depth).hits
            ranked = [h.chunk.id for h in hits if h.chunk.doc_id != positive.doc_id]
            negatives = _negatives(ranked, set(), config, rng)
            examples.append(
                Example(question, positive.embedding_text(), [snapshot.by_id[n].embedding_text() for n in negatives], where)
            )
    return examples


def assemble(
    config: RetrieverConfig,
    retriever: Any | None,
    store_file: Path | None = None,
    skip_answers: set[str] | None = None,
    log: Callable[[str], None] = print,
) -> RetrieverData:
    """Every source of the config, the held-out questions left out of all of them."""
    heldout = {_norm(q["question"]) for q in read_heldout(config.data.heldout)} if config.data.heldout else set()
    examples: list[Example] = []
    dev: list[DevSet] = []
    counts: dict[str, int] = {}
    splits: dict[str, Any] = {}
    for source in config.data.beir:
        found, dev_set, info = beir_data(source, config, heldout)
        examples += found
        counts[dev_set.name] = len(found)
        splits[dev_set.name] = info
        if dev_set.queries:
            dev.append(dev_set)
        log(f"{source.path}: {len(found)} pairs from {info['queries']['fit']} fit queries, split written to {source.output}")
    conversations = list(config.data.conversations)
    if config.data.store_conversations and store_file is not None and store_file.is_file():
        conversations.append(store_file)
    if config.data.examples or conversations:
        if retriever is None:
            raise UserInputError("company pairs and conversations need the live index: run `ragtune ingest` first")
        found, company_dev = example_data(list(config.data.examples), retriever, config, heldout)
        examples += found
        counts["examples"] = len(found)
        if company_dev is not None:
            dev.append(company_dev)
        rated = conversation_examples(conversations, retriever, config, heldout, skip_answers or set())
        examples += rated
        counts["conversations"] = len(rated)
        log(f"company: {len(found)} example pairs, {len(rated)} rated-up answers from {len(conversations)} store(s)")
    if not examples:
        raise UserInputError("the config gives no training pairs: add data.beir, data.examples or data.conversations")
    return RetrieverData(examples, dev, counts, splits)
