"""`ragtune train eval RUN`: base vs tuned on the same prompts, two ways.

raw       llama.cpp with the GGUF's own chat template and NO grammar, on the eval split's records
          (prompts exactly as trained): does the model itself do its job? Schema validity of the
          reply, the share of replies that pass serving's verification against the record's
          evidence, source accuracy (names the oracle source), tone similarity to the target
          (embedding cosine), tokens/s.
pipeline  the real chat pipeline (retrieval, evidence gate, grammar, citation check) on the
          held-out knowledge/ questions: fact accuracy (the expected fact is in the answer),
          citation accuracy (cites a chunk of the supporting document), refusal accuracy on
          near-miss and out-of-scope questions, false refusals on answerable ones.

A model is a `Candidate`: a GGUF, or a base GGUF with a LoRA adapter over it (a lora_only export,
measured as it is served). The pipeline side is handed in as a function
(`evaluation/model_quality.py` composes it from the serving code), so `train/` never imports `serve/`. Results are cached per model file and mode in
`<run>/eval/`, the report is written as report.json and report.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ragtune.answer import parse_reply
from ragtune.errors import InvalidModelOutput
from ragtune.progress import NullProgress, Progress

METRICS = [
    ("schema_validity", "schema validity"),
    ("verified_share", "replies passing verification"),
    ("refusal_accuracy", "refusal accuracy (no-answer)"),
    ("false_refusal_rate", "false refusals (answerable)"),
    ("citation_accuracy", "citation accuracy"),
    ("fact_accuracy", "fact accuracy (held-out)"),
    ("phrased_share", "answerable questions the model phrased (passed verification)"),
    ("phrased_fact_accuracy", "fact accuracy of the phrased answers"),
    ("tone_similarity", "tone similarity (cosine)"),
    ("tokens_per_s", "generation tokens/s"),
    ("latency_p50_ms", "answer latency p50 (ms)"),
]


def norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def has_fact(answer: str, fact: str) -> bool:
    """The fact occurs as a whole phrase: "99 EUR" is not found inside "9.99 EUR"."""
    pattern = r"(?<![\w.,])" + re.escape(norm(fact)) + r"(?![\w])"
    return re.search(pattern, norm(answer)) is not None


def file_key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}\x00{stat.st_size}\x00{stat.st_mtime_ns}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Candidate:
    """A model as served: a GGUF, and optionally a GGUF LoRA adapter applied over it."""

    gguf: Path
    adapter: Path | None = None

    @property
    def key(self) -> str:
        return file_key(self.gguf) + (f"+{file_key(self.adapter)}" if self.adapter else "")

    @property
    def label(self) -> str:
        return self.gguf.stem + (f"+{self.adapter.parent.name}" if self.adapter else "")


def _ratio(hits: int, total: int) -> float | None:
    return round(hits / total, 3) if total else None


def raw_generate(
    model: Candidate, prompts: list[list[dict]], llm_settings: Any, max_tokens: int, progress: Progress
) -> list[dict]:
    """Generate without any grammar, with the GGUF's own chat template (as the engine formats prompts)."""
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(model.gguf),
        lora_path=str(model.adapter) if model.adapter else None,
        n_ctx=llm_settings.n_ctx,
        n_threads=llm_settings.threads,
        seed=llm_settings.seed,
        verbose=False,
    )
    llm.chat_format = "chat_template.default"
    outputs = []
    name = model.label
    progress.start(f"raw {name}", len(prompts))
    try:
        for messages in prompts:
            t0 = time.perf_counter()
            out: Any = llm.create_chat_completion(
                messages=cast(Any, messages),
                max_tokens=max_tokens,
                temperature=llm_settings.temperature,
                seed=llm_settings.seed,
                repeat_penalty=llm_settings.repeat_penalty,
            )
            seconds = time.perf_counter() - t0
            outputs.append(
                {
                    "text": out["choices"][0]["message"]["content"] or "",
                    "completion_tokens": out.get("usage", {}).get("completion_tokens", 0),
                    "seconds": round(seconds, 3),
                }
            )
            progress.advance(f"raw {name}")
    finally:
        llm.close()
    return outputs


def score_raw(records: list[dict], outputs: list[dict], embed: Callable[[list[str]], Any] | None, company: str = "") -> dict:
    """Figures of replies to the eval split's prompts: valid, verified, naming the oracle, in tone."""
    from ragtune.prompt import ContextChunk
    from train.dataset import verify_target

    valid = verified = cited = 0
    pairs: list[tuple[str, str]] = []
    for record, out in zip(records, outputs, strict=False):
        meta = record["meta"]
        try:
            reply = parse_reply(out["text"])
        except InvalidModelOutput:
            continue
        valid += 1
        chunks = [ContextChunk(**c) for c in meta["chunks"]]
        verified += not verify_target(reply.answer, meta["question"], chunks, company)
        cited += meta.get("oracle") in reply.sources
        target = parse_reply(record["messages"][-1]["content"]).answer
        pairs.append((reply.answer, target))
    tone = None
    if pairs and embed is not None:
        a = embed([p[0] for p in pairs])
        b = embed([p[1] for p in pairs])
        tone = round(float((a * b).sum(axis=1).mean()), 3)
    tokens = sum(o["completion_tokens"] for o in outputs)
    seconds = sum(o["seconds"] for o in outputs)
    return {
        "n": len(records),
        "schema_validity": _ratio(valid, len(records)),
        "verified_share": _ratio(verified, len(records)),
        "citation_accuracy": _ratio(cited, len(records)),
        "tone_similarity": tone,
        "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        "latency_p50_ms": round(sorted(o["seconds"] for o in outputs)[len(outputs) // 2] * 1000) if outputs else None,
    }


def score_pipeline(questions: list[dict], responses: list[dict]) -> dict:
    """Score chat-pipeline responses ({answer, handoff, mode, sources: [{path, cited}], error}) on held-out questions."""
    valid = facts = cited = false_ref = refused = in_scope = out_scope = phrased = phrased_facts = 0
    latencies = []
    for question, response in zip(questions, responses, strict=False):
        ok = not response.get("error")
        valid += ok
        refusal = (not ok) or bool(response.get("handoff")) or response.get("mode") == "no_evidence"
        if response.get("total_ms") is not None:
            latencies.append(response["total_ms"])
        if question["kind"] == "in_scope":
            in_scope += 1
            false_ref += refusal
            if ok:
                fact = has_fact(response.get("answer", ""), question["fact"])
                facts += fact
                # In auto mode a reply that fails verification gives way to the extractive answer; the
                # share the model itself phrased, and their facts, show what the model adds.
                if response.get("mode") == "generated":
                    phrased += 1
                    phrased_facts += fact
                cited += any(s.get("cited") and s.get("path") == question["doc"] for s in response.get("sources", []))
        else:
            out_scope += 1
            refused += refusal
    latencies.sort()
    return {
        "n": len(questions),
        "schema_validity": _ratio(valid, len(questions)),
        "fact_accuracy": _ratio(facts, in_scope),
        "citation_accuracy": _ratio(cited, in_scope),
        "refusal_accuracy": _ratio(refused, out_scope),
        "false_refusal_rate": _ratio(false_ref, in_scope),
        "phrased_share": _ratio(phrased, in_scope),
        "phrased_fact_accuracy": _ratio(phrased_facts, phrased),
        "latency_p50_ms": round(latencies[len(latencies) // 2]) if latencies else None,
    }


def quality_score(pipeline: dict) -> float:
    """One figure for the deploy gate: the mean of fact, citation and refusal accuracy and (1 - false refusals)."""
    parts = [pipeline.get("fact_accuracy"), pipeline.get("citation_accuracy"), pipeline.get("refusal_accuracy")]
    if pipeline.get("false_refusal_rate") is not None:
        parts.append(1 - pipeline["false_refusal_rate"])
    values = [float(p) for p in parts if p is not None]
    return round(sum(values) / len(values), 4) if values else 0.0


def cached(folder: Path, name: str, compute: Callable[[], dict]) -> dict:
    path = folder / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def evaluate(
    models: dict[str, Candidate],
    records: list[dict],
    questions: list[dict],
    out: Path,
    llm_settings: Any,
    pipeline: Callable[[Candidate, list[dict]], list[dict]] | None,
    embed: Callable | None,
    max_tokens: int = 384,
    progress: Progress | None = None,
    modes: tuple[str, ...] = ("raw", "pipeline"),
    pipeline_variant: str = "",
    company: str = "",
    fingerprint: str = "",
) -> dict:
    """{label: {"raw": figures, "pipeline": figures}} for each model GGUF; cached per file.

    `pipeline_variant` names what else decides the pipeline's answers (the chat answer mode), so a
    cached result is reused only for the same one; `fingerprint` (a digest of the questions, the
    index version and the answering code, `evaluation.model_quality.pipeline_fingerprint`) keeps a
    result from an older pipeline or other questions from being reused after they changed."""
    progress = progress or NullProgress()
    report: dict[str, Any] = {
        "models": {k: v.label for k, v in models.items()},
        "raw_records": len(records),
        "heldout_questions": len(questions),
        "pipeline_variant": pipeline_variant,
        "results": {},
    }
    for label, model in models.items():
        key = model.key
        result: dict[str, Any] = {}
        if "raw" in modes and records:

            def compute_raw(model=model) -> dict:
                outputs = raw_generate(model, [r["messages"][:-1] for r in records], llm_settings, max_tokens, progress)
                return {"figures": score_raw(records, outputs, embed, company), "outputs": outputs}

            result["raw"] = cached(out / "cache", f"raw-{key}-{len(records)}", compute_raw)["figures"]
        if "pipeline" in modes and pipeline is not None and questions:

            def compute_pipe(model=model) -> dict:
                responses = pipeline(model, questions)
                return {"figures": score_pipeline(questions, responses), "responses": responses}

            result["pipeline"] = cached(
                out / "cache",
                f"pipeline-{key}-{len(questions)}{'-' + pipeline_variant if pipeline_variant else ''}"
                f"{'-' + fingerprint if fingerprint else ''}",
                compute_pipe,
            )["figures"]
        if "pipeline" in result:
            result["quality_score"] = quality_score(result["pipeline"])
        report["results"][label] = result
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(format_table(report) + "\n")
    return report


def format_table(report: dict) -> str:
    labels = list(report["results"])
    columns = [(label, mode) for mode in ("raw", "pipeline") for label in labels if mode in report["results"][label]]
    head = (
        "| metric | " + " | ".join(f"{label} ({'no grammar' if mode == 'raw' else 'pipeline'})" for label, mode in columns) + " |"
    )
    lines = [head, "|---|" + "---|" * len(columns)]
    for key, title in METRICS:
        cells = [report["results"][label][mode].get(key) for label, mode in columns]
        if all(c is None for c in cells):
            continue
        lines.append(f"| {title} | " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    lines.append(f"\nraw: {report['raw_records']} eval-split records; pipeline: {report['heldout_questions']} held-out questions")
    return "\n".join(lines)
