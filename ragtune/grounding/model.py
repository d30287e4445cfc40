"""The learned part of grounding: small logistic models, their weights kept as JSON.

- `selector` scores each candidate sentence (ragtune/grounding/features.py) as the answer to the
  question; its probability ranks the evidence. `selector_new` scores the sentences of a document
  no known question is about (an admin's upload since training): fitted with each example's
  document hidden, it leans on what the sentence says, not on the `known` signal that document
  cannot have.
- `answerable` says, from the best candidates and the question's words against the index
  vocabulary, whether the evidence answers the question; below `threshold` the answer is a hand-off.
- `brand` tells from a word's embedding whether it names another company's product ("gmail"), for
  the question's words the index never uses;
- `known`: the company's example questions, which a customer's question is compared with
  (ragtune/grounding/known.py);
- `intent` reads the question's embedding for what no document answers: a request for a person,
  an angry complaint, an account action the assistant cannot carry out;
- `followup` scores the units a follow-up's readings found (ragtune/grounding/followup_rank.py),
  fitted by `ragtune train followups` on the company's example conversations.

All of it is trained by `ragtune train selector` (train/selector.py) on the company's own examples,
with thresholds fitted on a held-out split; the result trained on the bundled examples ships as
ragtune/grounding/data/grounding.json, so a fresh install uses it. Serving only multiplies and adds:
no training library is needed to apply it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.grounding.features import SELECTOR_FEATURES
from ragtune.grounding.known import KnownQuestions

BUNDLED = Path(__file__).with_name("data") / "grounding.json"
FORMAT = 2


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


@dataclass
class Logistic:
    """Standardised inputs, one weight each, a bias: P(y=1|x) = sigmoid(((x - mean) / scale) . w + b)."""

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def prob(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return sigmoid(((x - self.mean) / self.scale) @ self.weights + self.bias)

    def to_json(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "mean": self.mean.round(6).tolist(),
            "scale": self.scale.round(6).tolist(),
            "weights": self.weights.round(6).tolist(),
            "bias": round(float(self.bias), 6),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Logistic:
        scale = np.asarray(data["scale"], dtype=np.float64)
        scale[scale < 1e-9] = 1.0  # a constant input (rounded to 0 in the file) carries no weight
        return cls(
            list(data["features"]),
            np.asarray(data["mean"], dtype=np.float64),
            scale,
            np.asarray(data["weights"], dtype=np.float64),
            float(data["bias"]),
        )


@dataclass
class Softmax:
    """Multinomial logistic regression over a question embedding: P(label | x)."""

    labels: list[str]
    weights: np.ndarray  # (dim, labels)
    bias: np.ndarray  # (labels,)

    def probs(self, x: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(np.asarray(x, dtype=np.float64)) @ self.weights + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def to_json(self) -> dict[str, Any]:
        return {"labels": self.labels, "weights": self.weights.round(5).tolist(), "bias": self.bias.round(5).tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Softmax:
        return cls(
            list(data["labels"]), np.asarray(data["weights"], dtype=np.float64), np.asarray(data["bias"], dtype=np.float64)
        )


def by_name(x: np.ndarray, names: list[str], features: Sequence[str] = SELECTOR_FEATURES) -> np.ndarray:
    """The columns of a `features` matrix that a model was fitted on (one fitted before a signal
    was added reads the ones it knows)."""
    columns = [features.index(name) for name in names]
    return np.atleast_2d(x)[:, columns]


def mixed_probs(selector: Logistic, selector_new: Logistic | None, x: np.ndarray, new: np.ndarray) -> np.ndarray:
    """`selector`'s probability for each row of `x`, `selector_new`'s for the rows marked `new`."""
    probs = selector.prob(by_name(x, selector.features))
    new = np.asarray(new, dtype=bool)
    if selector_new is not None and new.any():
        probs = np.where(new, selector_new.prob(by_name(x, selector_new.features)), probs)
    return probs


@dataclass
class GroundingModel:
    selector: Logistic
    answerable: Logistic
    threshold: float  # P(answerable) below which the answer is a hand-off
    support: float  # selector probability an extra sentence needs to join the answer
    intent: Softmax | None = None
    intent_thresholds: dict[str, float] = field(default_factory=dict)  # label -> probability that triggers it
    report: dict[str, Any] = field(default_factory=dict)  # what training measured on held-out data
    brand: Logistic | None = None  # P(a word is another company's product) from its embedding
    brand_threshold: float = 0.5
    known: KnownQuestions | None = None  # the company's example questions (ragtune/grounding/known.py)
    selector_new: Logistic | None = None  # the selector for units of a document no known question is about
    followup: Logistic | None = None  # which unit answers a follow-up (ragtune/grounding/followup_rank.py)
    followup_report: dict[str, Any] = field(default_factory=dict)  # its held-out figures

    def unit_probs(self, x: np.ndarray, new: np.ndarray) -> np.ndarray:
        """The selector's probability for each candidate row of `x`; rows whose document no known
        question is about (`new`) are scored by `selector_new` when there is one."""
        return mixed_probs(self.selector, self.selector_new, x, new)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "selector": self.selector.to_json(),
            "answerable": self.answerable.to_json(),
            "threshold": round(self.threshold, 6),
            "support": round(self.support, 6),
            "intent": self.intent.to_json() if self.intent else None,
            "intent_thresholds": self.intent_thresholds,
            "report": self.report,
            "brand": self.brand.to_json() if self.brand else None,
            "brand_threshold": round(self.brand_threshold, 6),
            "known": self.known.to_json() if self.known is not None else None,
            "selector_new": self.selector_new.to_json() if self.selector_new else None,
            "followup": self.followup.to_json() if self.followup else None,
            "followup_report": self.followup_report,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path | None = None) -> GroundingModel:
        path = path or BUNDLED
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no grounding model at {path}: train one with `ragtune train selector`") from None
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} is grounding model format {data.get('format')}, this ragtune reads {FORMAT}: retrain it")
        return cls(
            Logistic.from_json(data["selector"]),
            Logistic.from_json(data["answerable"]),
            float(data["threshold"]),
            float(data["support"]),
            Softmax.from_json(data["intent"]) if data.get("intent") else None,
            dict(data.get("intent_thresholds") or {}),
            dict(data.get("report") or {}),
            Logistic.from_json(data["brand"]) if data.get("brand") else None,
            float(data.get("brand_threshold", 0.5)),
            KnownQuestions.from_json(data["known"]) if data.get("known") else None,
            Logistic.from_json(data["selector_new"]) if data.get("selector_new") else None,
            Logistic.from_json(data["followup"]) if data.get("followup") else None,
            dict(data.get("followup_report") or {}),
        )
