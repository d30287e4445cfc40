"""Fitting the grounding package's small logistic models (numpy only, no training library).

Binary: L2-regularised logistic regression by Newton's method (a handful of features, a few
thousand rows: converges in a few iterations). Multinomial: softmax regression by full-batch
gradient descent with Adam over question embeddings. Both return the serving-side objects of
ragtune/grounding/model.py, so what is fitted here is exactly what serving multiplies.
"""

from __future__ import annotations

import numpy as np

from ragtune.grounding.model import Logistic, Softmax, sigmoid


def fit_logistic(x: np.ndarray, y: np.ndarray, names: list[str], l2: float = 1.0, iterations: int = 50) -> Logistic:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = sigmoid(z @ w)
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Logistic(list(names), mean, scale, w[:-1], float(w[-1]))


def fit_softmax(
    x: np.ndarray,
    labels: list[str],
    classes: list[str],
    l2: float = 1e-3,
    steps: int = 600,
    lr: float = 0.05,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
) -> Softmax:
    x = np.asarray(x, dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(x), len(classes)))
    y[np.arange(len(x)), [index[label] for label in labels]] = 1.0
    # Classes are weighted to equal total weight, so a large class does not drown a small one.
    counts = y.sum(axis=0)
    weight = (y @ (len(x) / (len(classes) * np.maximum(counts, 1))))[:, None]
    if sample_weight is not None:
        weight = weight * np.asarray(sample_weight, dtype=np.float64)[:, None]
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, (x.shape[1], len(classes)))
    b = np.zeros(len(classes))
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    for t in range(1, steps + 1):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = weight * (p - y) / len(x)
        gw, gb = x.T @ g + l2 * w, g.sum(axis=0)
        for param, grad, m, v in ((w, gw, m_w, v_w), (b, gb, m_b, v_b)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad**2
            param -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return Softmax(list(classes), w, b)


def fit_listwise(
    groups: list[tuple[np.ndarray, np.ndarray]], names: list[str], l2: float = 1.0, steps: int = 300, lr: float = 0.1
) -> Logistic:
    """A ranker trained listwise (conditional logit: the positive against its own question's
    candidates), then calibrated (Platt) so its scores are probabilities a unit answers.

    `groups`: per question, (features of its candidates, 0/1 labels with at least one 1)."""
    x_all = np.vstack([g[0] for g in groups]).astype(np.float64)
    mean = x_all.mean(axis=0)
    scale = x_all.std(axis=0)
    scale[scale < 1e-9] = 1.0
    zs = [((g[0] - mean) / scale, g[1] / g[1].sum()) for g in groups]
    w = np.zeros(x_all.shape[1])
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        grad = l2 * w / len(zs)
        for z, target in zs:
            s = z @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            grad += z.T @ (p - target) / len(zs)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    scores = np.concatenate([z @ w for z, _ in zs])[:, None]
    labels = np.concatenate([(g[1] > 0).astype(np.float64) for g in groups])
    platt = fit_logistic(scores, labels, ["score"], l2=1e-3)
    a = platt.weights[0] / platt.scale[0]
    b = platt.bias - platt.mean[0] * a
    return Logistic(list(names), mean, scale, w * a, float(b))
