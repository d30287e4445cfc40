"""`ragtune train selector`: the grounding model learned from the company's own examples.

Three small models (ragtune/grounding/model.py), fitted against the live index so they see what
serving sees:
- the evidence selector, from question -> quoted sentence pairs (train/examples/knowledge_pairs.jsonl):
  every unit of the chunks retrieved for the question is a candidate, the one holding the quote the
  positive, the rest (same and neighbouring chunks) hard negatives;
- answerability, from answerable questions (the pairs, held-out questions) against questions the
  documents do not answer (train/examples/handoff.jsonl: other companies' products, plans and
  features that do not exist, off-topic), its hand-off threshold fitted on out-of-fold predictions;
- the intent model (person, angry, action, info), from the hand-off examples and, when given, a
  customer-support corpus with intent labels (Bitext layout: instruction, intent).

A fixed share of every set (seeded) is held out from fitting and threshold choice and only
reported: selection top-1/top-3 before (raw embedding similarity) and after, hand-off precision
and recall at the fitted threshold, intent precision and recall. The example files are read by
train/selector_data.py.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragtune.grounding.answerability import ACTION, ANGRY, ANSWERABLE_FEATURES, INFO, PERSON, answerable_features, intent_input
from ragtune.grounding.evidence import Evidence, EvidenceSelector, corpus_stats_from
from ragtune.grounding.features import SELECTOR_FEATURES, features
from ragtune.grounding.known import KnownQuestions, Nearest, holds_quote
from ragtune.grounding.model import GroundingModel, Logistic, mixed_probs
from train.logistic import fit_logistic, fit_softmax
from train.selector_data import SelectorData

INTENTS = [INFO, PERSON, ANGRY, ACTION]
OWN_WEIGHT = 5.0
# Selector probability from which a further unit joins the best one in an answer.
SUPPORT = 0.25


@dataclass
class TrainResult:
    model: GroundingModel
    report: dict[str, Any] = field(default_factory=dict)


def _split(n: int, share: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    cut = round(n * share)
    return sorted(order[cut:]), sorted(order[:cut])


# The share of answerability's training questions scored as if no example mentioned their document
# (an admin's new upload has no known questions): the weight learned for the closeness to known
# questions must not make a new document's answers hand-offs.
UNSEEN_SHARE = 0.4


def unseen(question: str) -> bool:
    return int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) % 1000 < UNSEEN_SHARE * 1000


class Candidates:
    """Retrieval + candidate units + features for questions, as the chat service computes them."""

    def __init__(self, retriever: Any, floor: float, chunks: int, known: KnownQuestions):
        self.retriever = retriever
        self.floor = floor
        self.chunks = chunks
        self.selector = EvidenceSelector(retriever.embedder, model=None, known=known)
        self.all_chunks = retriever.snapshot().chunks
        self.stats = corpus_stats_from(self.all_chunks)
        self.use_known = True

    def hidden(self, question: str, doc: str, always: bool = False) -> str | None:
        """The document scored as new for this question: `doc` for a share of questions (`unseen`),
        or always."""
        return doc if doc and (always or unseen(question)) else None

    def for_question(self, question: str, doc: str = "", always_hide: bool = False) -> tuple[list, np.ndarray, list]:
        """As serving sees a new question: the question itself is left out of the known ones, and
        for a share of questions (all with `always_hide`) every known question about its document."""
        hide = self.hidden(question, doc, always_hide)
        result = self.retriever.search(question)
        hits = result.relevant(self.floor)[: self.chunks]
        qvec = self.retriever.embedder.embed_query(question)
        if self.use_known:
            hits = self.selector.with_known(qvec, hits, self.all_chunks, self.floor, exclude=question, hide_doc=hide)
        cands = self.selector.candidates(question, hits, qvec, exclude=question, hide_doc=hide)
        return cands, features(question, cands, self.stats), hits

    def new_units(self, cands: list, hits: list, hide: str | None) -> np.ndarray:
        return self.selector.new_units([hits[c.chunk_rank].chunk.doc_id for c in cands], hide)

    def known_nearest(self, question: str, ranked: list[Evidence], doc: str = "") -> Nearest:
        hide = self.hidden(question, doc)
        evidence_doc = ranked[0].hit.chunk.doc_id if ranked else ""
        qvec = self.retriever.embedder.embed_query(question)
        return self.selector.known_nearest(qvec, evidence_doc, exclude=question, hide_doc=hide)

    def ranked(self, question: str, model: GroundingModel, doc: str = "") -> list[Evidence]:
        cands, x, hits = self.for_question(question, doc)
        if not cands:
            return []
        probs = model.unit_probs(x, self.new_units(cands, hits, self.hidden(question, doc)))
        scored = [
            Evidence(
                hit=hits[c.chunk_rank], sentence=c.unit.text, score=float(p), unit=c.unit, dense=c.dense, position=c.position
            )
            for c, p in zip(cands, probs, strict=True)
        ]
        return sorted(scored, key=lambda e: e.score, reverse=True)


def _labels(cands: list, hits: list, pair: dict[str, Any]) -> np.ndarray:
    """1 for the units holding the pair's quote (in the pair's document), else 0."""
    out = []
    for c in cands:
        hit = holds_quote(c.unit.text, pair["quote"])
        out.append(1.0 if hit and hits[c.chunk_rank].chunk.doc_id == pair["doc"] else 0.0)
    return np.asarray(out)


def _quantile_threshold(positives: np.ndarray, max_false_handoff: float) -> float:
    positives = np.sort(positives)
    allowed = int(np.floor(max_false_handoff * len(positives)))
    return float(positives[allowed]) - 1e-6 if allowed < len(positives) else 0.5


def _choose_threshold(
    scores: np.ndarray, labels: np.ndarray, max_false_handoff: float, resamples: int = 200, seed: int = 0
) -> float:
    """The hand-off threshold: the highest one whose false hand-offs (answerable questions scored
    below it) stay within `max_false_handoff`, so as many unanswerable ones as possible are caught.
    The low tail of the answerable scores is sparse (3% of a few hundred questions is a dozen), so
    the plain quantile jumps when a few rows change; the mean of the quantile over bootstrap
    resamples of the answerable questions does not."""
    positives = scores[labels == 1]
    if len(positives) == 0:
        return 0.5
    rng = np.random.default_rng(seed)
    picks = [_quantile_threshold(rng.choice(positives, len(positives)), max_false_handoff) for _ in range(resamples)]
    return float(np.mean(picks))


def _out_of_fold(x: np.ndarray, y: np.ndarray, names: list[str], folds: int = 5, repeats: int = 5, seed: int = 0) -> np.ndarray:
    """Each row's probability from fits that did not see it, averaged over `repeats` shuffled
    `folds`-fold splits (one split's folds make the scores, and the threshold, depend on the order)."""
    total = np.zeros(len(y))
    for r in range(repeats):
        order = list(range(len(y)))
        random.Random(seed + r).shuffle(order)
        for k in range(folds):
            outer = [order[j] for j in range(len(order)) if j % folds == k]
            inner = [order[j] for j in range(len(order)) if j % folds != k]
            total[outer] += fit_logistic(x[inner], y[inner], names).prob(x[outer])
    return total / repeats


def _handoff_figures(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    handoff = scores < threshold
    unanswerable = labels == 0
    tp = int((handoff & unanswerable).sum())
    return {
        "n": int(len(labels)),
        "handoff_precision": round(tp / max(1, int(handoff.sum())), 3),
        "handoff_recall": round(tp / max(1, int(unanswerable.sum())), 3),
        "false_handoff_rate": round(int((handoff & ~unanswerable).sum()) / max(1, int((~unanswerable).sum())), 3),
    }


def train(
    retriever: Any,
    data: SelectorData,
    floor: float,
    chunks: int,
    holdout: float = 0.3,
    seed: int = 13,
    max_false_handoff: float = 0.05,
    progress: Callable[[str], None] = lambda message: None,
) -> TrainResult:
    known = data.known_questions(sorted({c.doc_id for c in retriever.snapshot().chunks}))
    known.ensure(retriever.embedder)
    cand = Candidates(retriever, floor, chunks, known)
    report: dict[str, Any] = {"holdout_share": holdout, "seed": seed}

    # 1. The selector, on question -> quote pairs.
    progress(f"selector: scoring candidates of {len(data.pairs)} pairs, as known and as a new document's")
    rows, new_rows = [], []
    for pair in data.pairs:
        cands, x, hits = cand.for_question(pair["question"])
        rows.append((x, _labels(cands, hits, pair), np.asarray([c.dense for c in cands]), np.zeros(len(cands), bool)))
        # The same question as if no example were about its document (an admin's upload since).
        cands, x, hits = cand.for_question(pair["question"], pair["doc"], always_hide=True)
        dense = np.asarray([c.dense for c in cands])
        new_rows.append((x, _labels(cands, hits, pair), dense, cand.new_units(cands, hits, pair["doc"])))
    train_idx, test_idx = _split(len(rows), holdout, seed)
    fit_rows = [rows[i] for i in train_idx if rows[i][1].any()]
    selector = fit_logistic(
        np.vstack([r[0] for r in fit_rows]), np.concatenate([r[1] for r in fit_rows]), list(SELECTOR_FEATURES), l2=1.0
    )
    # The new-document selector learns from the hidden document's units only: those are the rows it scores.
    fit_new = [new_rows[i] for i in train_idx if new_rows[i][1].any()]
    selector_new = fit_logistic(
        np.vstack([r[0][r[3]] for r in fit_new]),
        np.concatenate([r[1][r[3]] for r in fit_new]),
        list(SELECTOR_FEATURES),
        l2=1.0,
    )
    report["selection_heldout"] = _selection(rows, test_idx, selector, None)
    report["selection_train"] = _selection(rows, train_idx, selector, None)
    # Held-out pairs with their document's known questions hidden: the known selector alone, then
    # with the new-document selector scoring that document's units.
    report["selection_heldout_new_document"] = _selection(new_rows, test_idx, selector, None) | {
        f"with_new_{k}": v for k, v in _selection(new_rows, test_idx, selector, selector_new).items() if k.startswith("after")
    }
    support = SUPPORT
    model = GroundingModel(
        selector,
        Logistic(
            list(ANSWERABLE_FEATURES),
            np.zeros(len(ANSWERABLE_FEATURES)),
            np.ones(len(ANSWERABLE_FEATURES)),
            np.zeros(len(ANSWERABLE_FEATURES)),
            0.0,
        ),
        0.5,
        support,
        selector_new=selector_new,
    )

    # 2. Brand-likeness of single words, then answerability (which uses it).
    if data.words:
        names = [w for w, _ in data.words]
        wv = cand.selector.word_vectors(names)
        wy = np.asarray([label for _, label in data.words], dtype=np.float64)
        w_train, w_test = _split(len(names), holdout, seed + 3)
        brand = fit_logistic(wv[w_train], wy[w_train], [f"e{i}" for i in range(wv.shape[1])], l2=10.0)
        # The threshold keeps ordinary words flagged on the training part within 2%.
        train_probs = brand.prob(wv[w_train])
        ordinary = np.sort(train_probs[wy[w_train] == 0])
        brand_threshold = float(max(0.5, ordinary[int(0.98 * (len(ordinary) - 1))] + 1e-6)) if len(ordinary) else 0.5
        predicted = brand.prob(wv[w_test]) >= brand_threshold
        truth = wy[w_test] > 0
        report["brand_heldout"] = {
            "threshold": round(brand_threshold, 4),
            "n": len(w_test),
            "accuracy": round(float((predicted == truth).mean()), 3),
            "brand_recall": round(float((predicted & truth).sum() / max(1, truth.sum())), 3),
            "word_false_positive": round(float((predicted & ~truth).sum() / max(1, (~truth).sum())), 3),
        }
        model.brand, model.brand_threshold = brand, brand_threshold

    # 2b. Answerability: answerable questions (the pairs whose quote was retrieved, held-out in-scope
    # questions) against unanswerable ones.
    progress(f"answerability: {len(data.pairs) + len(data.answerable)} questions")
    questions = [(p["question"], 1, p["doc"]) for p, r in zip(data.pairs, rows, strict=True) if r[1].any()]
    questions += [(a["question"], a["label"], a.get("doc", "")) for a in data.answerable]
    ax = np.vstack([_answerable_row(cand, model, q, doc) for q, _, doc in questions])
    ay = np.asarray([label for _, label, _ in questions], dtype=np.float64)
    a_train, a_test = _split(len(questions), holdout, seed + 1)
    # Out-of-fold scores on the training part choose the threshold; the held-out part only reports.
    oof = _out_of_fold(ax[a_train], ay[a_train], list(ANSWERABLE_FEATURES), seed=seed)
    threshold = _choose_threshold(oof, ay[a_train], max_false_handoff)
    answerable = fit_logistic(ax[a_train], ay[a_train], list(ANSWERABLE_FEATURES))
    report["handoff_threshold"] = round(threshold, 4)
    report["handoff_train_oof"] = _handoff_figures(oof, ay[a_train], threshold)
    report["handoff_heldout"] = _handoff_figures(answerable.prob(ax[a_test]), ay[a_test], threshold)

    # 3. Intents, from question embeddings.
    progress(f"intent: embedding {len(data.intents)} texts")
    texts = [t for t, _, _ in data.intents]
    vectors = np.vstack([intent_input(v, t) for v, t in zip(retriever.embedder.embed_queries(texts), texts, strict=True)])
    labels = [label for _, label, _ in data.intents]
    i_train, i_test = _split(len(texts), holdout, seed + 2)
    # The company's own examples count more than the borrowed corpus (another business, other wording).
    own_weight = np.asarray([OWN_WEIGHT if data.intents[i][2] == "own" else 1.0 for i in i_train])
    intent = fit_softmax(vectors[i_train], [labels[i] for i in i_train], INTENTS, seed=seed, sample_weight=own_weight)
    probs_train = intent.probs(vectors[i_train])
    # Each intent's threshold: the best F1 on the training part among those that flag at most
    # `max_false_handoff` / 3 of the company's own answerable questions (a false hand-off is what
    # customers notice; three intents share that budget).
    own_info = np.asarray([labels[i] == INFO and data.intents[i][2] == "own" for i in i_train])
    thresholds = {}
    for j, label in enumerate(INTENTS):
        if label == INFO:
            continue
        truth = np.asarray([labels[i] == label for i in i_train])
        best, best_f = 0.95, -1.0
        for t in np.linspace(0.3, 0.95, 27):
            pred = probs_train[:, j] >= t
            if own_info.any() and (pred & own_info).sum() / own_info.sum() > max_false_handoff / 3:
                continue
            tp = (pred & truth).sum()
            f = 2 * tp / max(1, pred.sum() + truth.sum())
            if f > best_f:
                best, best_f = float(t), f
        thresholds[label] = round(best, 3)
    model = GroundingModel(
        selector,
        answerable,
        threshold,
        support,
        intent,
        thresholds,
        brand=model.brand,
        brand_threshold=model.brand_threshold,
        known=known,
        selector_new=selector_new,
    )
    report["intent_heldout"] = _intent_figures(model, vectors, labels, [data.intents[i][2] for i in range(len(texts))], i_test)
    model.report = report
    return TrainResult(model, report)


Rows = list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # per question: features, labels, dense, new


def _selection(rows: Rows, idx: list[int], selector: Logistic, selector_new: Logistic | None) -> dict[str, Any]:
    """Top-1 / top-3: how often the quote's unit ranks first (in the first three), by raw embedding
    similarity (before) and by the selector (after), over the questions whose quote was retrieved."""
    found = [rows[i] for i in idx if rows[i][1].any()]
    top = {"before_top1": 0, "before_top3": 0, "after_top1": 0, "after_top3": 0}
    for xq, yq, dense, new in found:
        probs = mixed_probs(selector, selector_new, xq, new)
        after, before = np.argsort(-probs), np.argsort(-dense)
        top["before_top1"] += int(yq[before[0]] > 0)
        top["before_top3"] += int(yq[before[:3]].any())
        top["after_top1"] += int(yq[after[0]] > 0)
        top["after_top3"] += int(yq[after[:3]].any())
    n = max(1, len(found))
    return {"questions": len(idx), "quote_retrieved": len(found)} | {k: round(v / n, 3) for k, v in top.items()}


def _answerable_row(cand: Candidates, model: GroundingModel, question: str, doc: str) -> np.ndarray:
    ranked = cand.ranked(question, model, doc)
    known = cand.known_nearest(question, ranked, doc)
    return answerable_features(
        question, ranked, cand.stats, cand.selector.word_vectors, model.brand, known, model.brand_threshold
    )


def _intent_from_input(model: GroundingModel, x: np.ndarray) -> str:
    assert model.intent is not None
    probs = model.intent.probs(x)[0]
    best, score = INFO, 0.0
    for label, p in zip(model.intent.labels, probs, strict=True):
        t = model.intent_thresholds.get(label)
        if label != INFO and t is not None and p >= t and p > score:
            best, score = label, float(p)
    return best


def _intent_figures(
    model: GroundingModel, vectors: np.ndarray, labels: list[str], sources: list[str], idx: list[int]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for source in ("own", "corpus"):
        chosen = [i for i in idx if sources[i] == source]
        if not chosen:
            continue
        predicted = [_intent_from_input(model, vectors[i]) for i in chosen]
        figures: dict[str, Any] = {"n": len(chosen)}
        for label in (PERSON, ANGRY, ACTION):
            truth = [labels[i] == label for i in chosen]
            pred = [p == label for p in predicted]
            tp = sum(t and p for t, p in zip(truth, pred, strict=True))
            figures[label] = {
                "precision": round(tp / max(1, sum(pred)), 3),
                "recall": round(tp / max(1, sum(truth)), 3),
                "support": sum(truth),
            }
        figures["info_flagged"] = round(
            sum(p != INFO for p, i in zip(predicted, chosen, strict=True) if labels[i] == INFO)
            / max(1, sum(labels[i] == INFO for i in chosen)),
            3,
        )
        out[source] = figures
    return out
