"""Questions the company has already answered (or declined), as a memory the grounding models read.

The company's example questions (`train/examples/`: each answerable one with the document and the
quoted sentence that answers it, each unanswerable one with why) are kept with the grounding model.
A customer's question is compared with them, question to question, which a sentence embedding does
far better than question to answer ("discount for educators?" is close to "do teachers get a
deal?", further from "Teachers ... get 50% off"):
- a candidate sentence gets the similarity of the closest known question it answers (the selector's
  `known` signal);
- the question gets the similarity of the closest answerable and the closest unanswerable known
  question (answerability's `known_yes` / `known_no`). A question unanswerable because it is about
  another company's product ("how to enable two factor on my facebook account") says nothing about
  a question that names no such product ("how do i turn on two factor"): answerability reads the
  closest unanswerable one without them for a question whose words are all the documents' own.

Training computes these leaving the question itself out (`exclude`), so the weights learned for
them are the ones a new paraphrase of a known question earns, not an exact match's.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ragtune.embedding import Embedder


def norm(text: str) -> str:
    """Lower case, punctuation as spaces (numbers, prices and percentages kept)."""
    return " ".join(re.sub(r"[^\w%.,€£$]+", " ", text.lower()).split()).strip(" .,")


def holds_quote(unit_text: str, quote: str) -> bool:
    """Whether a unit holds a quote (or a long unit is part of it), compared normalised."""
    q, t = norm(quote), norm(unit_text)
    return bool(q) and (q in t or (len(t) > 20 and t in q))


OTHER_PRODUCT = "other_company"  # the kind of an example unanswerable for naming another company's product
LEFT_OUT = -0.999  # `similarity` gives -1 to the known questions it leaves out


class Nearest(NamedTuple):
    yes: float  # the closest answerable known question
    no: float  # the closest unanswerable one
    no_own_words: float  # the closest unanswerable one that is not about another company's product


@dataclass
class KnownQuestions:
    questions: list[str]
    docs: list[str]  # the answering document ("" when unknown)
    quotes: list[str]  # the answering sentence ("" when unknown)
    answerable: list[int]  # 1 answered from the documents, 0 not (another company, no such feature, ...)
    vectors: np.ndarray | None = None  # embedded questions (rows unit length), for `fingerprint`'s space
    fingerprint: str = ""
    index_docs: list[str] = field(default_factory=list)  # the documents of the index they were judged against
    kinds: list[str] = field(default_factory=list)  # why an unanswerable one is ("other_company", ...); "" unknown
    _by_doc: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _norms: list[str] = field(default_factory=list, repr=False)
    _index_docs: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        n = len(self.questions)
        if not (len(self.docs) == len(self.quotes) == len(self.answerable) == n):
            raise ValueError("known questions: questions, docs, quotes and answerable differ in length")
        if self.kinds and len(self.kinds) != n:
            raise ValueError("known questions: kinds and questions differ in length")
        self._by_doc = {}
        for i, (doc, quote) in enumerate(zip(self.docs, self.quotes, strict=True)):
            if doc and quote and self.answerable[i]:
                self._by_doc.setdefault(doc, []).append(i)
        self._norms = [norm(q) for q in self.questions]
        self._index_docs = set(self.index_docs)

    def __len__(self) -> int:
        return len(self.questions)

    def ensure(self, embedder: Embedder) -> np.ndarray:
        """The question vectors in `embedder`'s space (embedded once when the stored ones are another's)."""
        fingerprint = embedder.fingerprint()
        if self.vectors is None or self.fingerprint != fingerprint or len(self.vectors) != len(self):
            self.vectors = (
                embedder.embed_queries(self.questions).astype(np.float32) if self.questions else np.zeros((0, 1), np.float32)
            )
            self.fingerprint = fingerprint
        return self.vectors

    def _mask(self, exclude: str | None, hide_doc: str | None) -> np.ndarray:
        keep = np.ones(len(self), dtype=bool)
        if exclude:
            target = norm(exclude)
            keep &= np.asarray([n != target for n in self._norms], dtype=bool)
        if hide_doc:
            keep &= np.asarray([d != hide_doc for d in self.docs], dtype=bool)
        return keep

    def similarity(
        self, embedder: Embedder, qvec: np.ndarray, exclude: str | None = None, hide_doc: str | None = None
    ) -> np.ndarray:
        """Cosine of the question to every known question; -1 for the ones left out: `exclude` (the
        question itself) and, with `hide_doc`, every question about that document (training's view
        of a document the examples never mention, as an admin's new upload is)."""
        if not len(self):
            return np.zeros(0)
        sims = self.ensure(embedder) @ np.asarray(qvec, dtype=np.float32)
        return np.where(self._mask(exclude, hide_doc), sims, -1.0)

    def about(self, doc: str) -> bool:
        """Whether any answerable known question quotes `doc` (its units can earn the `known` signal)."""
        return doc in self._by_doc

    def judged(self, doc: str) -> bool:
        """Whether the unanswerable questions were judged with `doc` in the index: a document
        added since (an admin's upload) may answer what was unanswerable then."""
        return not self.index_docs or doc in self._index_docs

    def nearest(self, sims: np.ndarray) -> Nearest:
        """The closest answerable and unanswerable known question's similarity (0 where there is
        none), and the closest unanswerable one that is not about another company's product."""
        labels = np.asarray(self.answerable, dtype=bool)
        product = np.asarray([k == OTHER_PRODUCT for k in self.kinds] if self.kinds else [False] * len(self), dtype=bool)

        def top(mask: np.ndarray) -> float:
            return max(0.0, float(sims[mask].max())) if mask.any() else 0.0

        return Nearest(top(labels), top(~labels), top(~labels & ~product))

    def unit_scores(self, sims: np.ndarray, units: Sequence[tuple[str, str]]) -> np.ndarray:
        """For each (document, unit text): the similarity of the closest known question that this
        unit answers (0 when none does), and how many known questions it answers (left-out ones,
        similarity -1, not counted), as rows of two."""
        out = np.zeros((len(units), 2))
        if not len(self):
            return out
        for j, (doc, text) in enumerate(units):
            best, count = 0.0, 0
            for i in self._by_doc.get(doc, ()):
                if sims[i] > LEFT_OUT and holds_quote(text, self.quotes[i]):
                    best, count = max(best, float(sims[i])), count + 1
            out[j] = (best, count)
        return out

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "questions": self.questions,
            "docs": self.docs,
            "quotes": self.quotes,
            "answerable": self.answerable,
            "index_docs": self.index_docs,
            "kinds": self.kinds,
        }
        if self.vectors is not None and len(self.vectors):
            data["fingerprint"] = self.fingerprint
            data["dimension"] = int(self.vectors.shape[1])
            data["vectors_f16"] = base64.b64encode(self.vectors.astype("<f2").tobytes()).decode("ascii")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KnownQuestions:
        vectors = None
        if data.get("vectors_f16"):
            raw = np.frombuffer(base64.b64decode(data["vectors_f16"]), dtype="<f2").astype(np.float32)
            vectors = raw.reshape(-1, int(data["dimension"]))
        return cls(
            list(data["questions"]),
            list(data["docs"]),
            list(data["quotes"]),
            [int(x) for x in data["answerable"]],
            vectors,
            str(data.get("fingerprint", "")),
            list(data.get("index_docs") or []),
            list(data.get("kinds") or []),
        )


KNOWN_HIT_SIMILARITY = 0.6
KNOWN_HITS = 2


def known_hits(
    known: KnownQuestions,
    sims: np.ndarray,
    chunks: Sequence[Any],
    present: set[str],
    relevance: float,
    threshold: float = KNOWN_HIT_SIMILARITY,
    limit: int = KNOWN_HITS,
) -> list[Any]:
    """Chunks holding the answers of the known questions closest to the customer's (similarity at
    least `threshold`), which retrieval did not bring (`present`: chunk ids it did), as hits after
    the retrieved ones: a paraphrase of a known question finds its answer even when its words
    miss the document's. `chunks`: the index version's chunks; `relevance`: the hits' relevance."""
    from ragtune.documents import Hit

    if not len(known) or not len(sims):
        return []
    order = np.argsort(-sims)
    out: list[Any] = []
    seen = set(present)
    for i in order[: 4 * limit]:
        if sims[i] < threshold or len(out) >= limit:
            break
        if not known.answerable[i] or not known.quotes[i]:
            continue
        for chunk in chunks:
            if chunk.doc_id == known.docs[i] and chunk.id not in seen and holds_quote_in(chunk.text, known.quotes[i]):
                out.append(Hit(chunk, 0.0, relevance, extra={"known": round(float(sims[i]), 4)}))
                seen.add(chunk.id)
                break
    return out


def holds_quote_in(text: str, quote: str) -> bool:
    q = norm(quote)
    return bool(q) and q in norm(text)
