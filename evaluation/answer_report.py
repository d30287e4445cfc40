"""The summary of an answer evaluation (evaluation/answers.py) and its text report.

Rates are over the questions a measure applies to (None when none does); "right" is each
question's verdict (evaluation.answers._verdict). Hand-off precision and recall count the
questions whose right reply is known to be a hand-off or not (in scope: not; out of scope, near
miss, other company, person, angry, action, and a German or French question the documents cannot
answer: a hand-off). The judged-form rates are over every answer that is not a hand-off, single
questions and conversation turns together.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _latency(rows: list[dict[str, Any]]) -> dict[str, float]:
    seconds = [r["seconds"] for r in rows]
    if not seconds:
        return {}
    return {"p50": round(float(np.percentile(seconds, 50)), 3), "p95": round(float(np.percentile(seconds, 95)), 3)}


def _handoff(rows: list[dict[str, Any]]) -> dict[str, Any]:
    known = [r for r in rows if r.get("expected_handoff") is not None and "error" not in r]
    true_pos = sum(1 for r in known if r["expected_handoff"] and r["handoff"])
    predicted = sum(1 for r in known if r["handoff"])
    expected = sum(1 for r in known if r["expected_handoff"])
    by_reason: dict[str, list[bool]] = defaultdict(list)
    for r in known:
        if r["expected_handoff"]:
            by_reason[r.get("handoff_reason") or r["kind"]].append(r["handoff"])
    handoffs = [r for r in rows if r.get("handoff")]
    self_service = [r for r in rows if r["kind"] == "handoff" and r.get("fact") is not None]
    return {
        "precision": round(true_pos / predicted, 4) if predicted else None,
        "recall": round(true_pos / expected, 4) if expected else None,
        "recall_by_reason": {k: _rate(v) for k, v in sorted(by_reason.items())},
        "self_service_given": _rate([bool(r["fact"]) for r in self_service]),
        "with_contact": _rate([bool(r.get("contact")) for r in handoffs]),
        "echoes": sum(1 for r in handoffs if r.get("echoes")),
    }


def _form(rows: list[dict[str, Any]]) -> dict[str, Any]:
    answered = [r for r in rows if r.get("form") is not None]
    first = [r["fact_first"] for r in answered if r.get("fact_first") is not None]
    reasons = Counter(f["reason"] for r in answered for f in r["form"]["fragments"])
    return {
        "answers": len(answered),
        "fact_first_sentence": _rate(first),
        "no_fragments": _rate([not r["form"]["fragments"] for r in answered]),
        "no_off_topic": _rate([not r["form"]["off_topic"] for r in answered]),
        "no_repeats": _rate([not r["form"]["repeated"] for r in answered]),
        "no_filler": _rate([not r["form"]["filler"] for r in answered]),
        "fragment_reasons": dict(sorted(reasons.items())),
    }


def _categories(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["category"]].append(r)
    return {
        cat: {
            "n": len(rs),
            "right": _rate([bool(r.get("right")) for r in rs]),
            "fact": _rate([bool(r.get("fact")) for r in rs if r.get("fact") is not None or "error" in r]),
            "citation": _rate([bool(r.get("citation")) for r in rs if r["kind"] == "in_scope"]),
        }
        for cat, rs in sorted(groups.items())
    }


def _conversations(conversations: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not conversations:
        return None
    turns = [t for c in conversations for t in c["turns"]]
    firsts = [c["turns"][0] for c in conversations]
    follow_ups = [t for c in conversations for t in c["turns"][1:]]
    by_category: dict[str, list[bool]] = defaultdict(list)
    for t in turns:
        by_category[t["category"]].append(bool(t.get("right")))
    in_scope = [t for t in turns if t["kind"] == "in_scope" and "error" not in t]
    return {
        "conversations": len(conversations),
        "turns": len(turns),
        "first_turns_right": _rate([bool(t.get("right")) for t in firsts]),
        "follow_ups_right": _rate([bool(t.get("right")) for t in follow_ups]),
        "conversations_right": _rate([all(t.get("right") for t in c["turns"]) for c in conversations]),
        "fact_accuracy": _rate([bool(t.get("fact")) for t in in_scope if t.get("fact") is not None]),
        "false_handoffs": _rate([t["handoff"] for t in in_scope]),
        "repeats_previous": sum(1 for t in turns if t.get("repeats_previous")),
        "handoff": _handoff(turns),
        "by_turn_category": {k: {"n": len(v), "right": _rate(v)} for k, v in sorted(by_category.items())},
        "errors": sum(1 for t in turns if "error" in t),
        "latency_s": _latency(turns),
    }


def summarise(rows: list[dict[str, Any]], label: str, conversations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    conversations = conversations or []
    kinds = ("in_scope", "out_of_scope", "near_scope", "injection", "handoff", "language")
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in kinds}
    ok = [r for r in rows if "error" not in r]
    ins = [r for r in by_kind["in_scope"] if "error" not in r]
    refusals = by_kind["out_of_scope"] + by_kind["near_scope"]
    language = by_kind["language"]
    yes_no = [r for r in rows if r.get("yes_no")]
    turns = [t for c in conversations for t in c["turns"]]
    return {
        "label": label,
        "questions": len(rows),
        "by_kind": {k: len(v) for k, v in by_kind.items() if v or k in kinds[:4]},
        "fact_accuracy": _rate([bool(r.get("fact")) for r in by_kind["in_scope"] if r.get("fact") is not None or "error" in r]),
        "citation_accuracy": _rate([bool(r.get("citation")) for r in by_kind["in_scope"]]),
        "retrieval_hit": _rate([bool(r.get("retrieval")) for r in by_kind["in_scope"]]),
        "false_handoffs": _rate([r["handoff"] for r in ins]) if ins else None,
        "out_of_scope_refused": _rate([bool(r.get("handoff")) for r in by_kind["out_of_scope"]]),
        "near_scope_refused": _rate([bool(r.get("handoff")) for r in by_kind["near_scope"]]),
        "refusals": _rate([bool(r.get("handoff")) for r in refusals]),
        "handoff": _handoff(rows),
        "yes_no_direct": _rate([bool(r["yes_no_ok"]) for r in yes_no]),
        "language": {
            "questions": len(language),
            "right": _rate([bool(r.get("right")) for r in language]),
            "answered": sum(1 for r in language if "error" not in r and not r["handoff"]),
            "handoffs_in_language": _rate([bool(r.get("language_ok")) for r in language if r.get("handoff")]),
        },
        "form": _form(rows + turns),
        "categories": _categories(rows),
        "conversations": _conversations(conversations),
        "handoff_with_model_text": sum(1 for r in ok if r["handoff"] and r["mode"] == "generated"),
        "schema_valid": _rate([r["schema_valid"] for r in rows + turns]),
        "debris": sum(1 for r in ok if r["debris"]),
        "injection_resisted": _rate([r["schema_valid"] and not r.get("leak") for r in by_kind["injection"]]),
        "leaks": sum(1 for r in ok if r.get("leak")),
        "errors": dict(Counter(r["error"].split(":")[0] for r in rows + turns if "error" in r)),
        "modes": dict(Counter(r["mode"] for r in ok)),
        "rejections": dict(Counter(reason for r in ok for reason in r["rejections"])),
        "latency_s": _latency(rows),
    }


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def format_report(report: dict[str, Any]) -> str:
    s = report["summary"]
    h, form = s["handoff"], s["form"]
    lines = [
        f"answers evaluated: {s['questions']} questions ({', '.join(f'{k} {v}' for k, v in s['by_kind'].items())}); answer mode {s['label']}",
        f"fact accuracy        {pct(s['fact_accuracy'])}",
        f"citation accuracy    {pct(s['citation_accuracy'])}",
        f"retrieval hit        {pct(s['retrieval_hit'])}",
        f"false hand-offs      {pct(s['false_handoffs'])}",
        f"out-of-scope refused {pct(s['out_of_scope_refused'])}",
        f"near-miss refused    {pct(s['near_scope_refused'])}",
        f"refusals (both)      {pct(s['refusals'])}",
        f"hand-offs            precision {pct(h['precision'])}, recall {pct(h['recall'])}; recall by reason "
        + (", ".join(f"{k} {pct(v)}" for k, v in h["recall_by_reason"].items()) or "-"),
        f"                     self-service steps given {pct(h['self_service_given'])}, with a contact {pct(h['with_contact'])}, "
        f"echoing the customer's words {h['echoes']}",
        f"yes/no answered directly {pct(s['yes_no_direct'])}",
    ]
    if s["language"]["questions"]:
        lang = s["language"]
        lines.append(
            f"German/French        right {pct(lang['right'])} of {lang['questions']} (answered {lang['answered']}, "
            f"hand-offs in the customer's language {pct(lang['handoffs_in_language'])})"
        )
    lines += [
        f"judged form ({form['answers']} answers): fact in first sentence {pct(form['fact_first_sentence'])}, "
        f"no fragments {pct(form['no_fragments'])}, no off-topic {pct(form['no_off_topic'])}, "
        f"no repeats {pct(form['no_repeats'])}, no filler {pct(form['no_filler'])}",
        f"                     fragments by kind {form['fragment_reasons'] or '-'}",
    ]
    c = s["conversations"]
    if c:
        lines += [
            f"conversations        {c['conversations']} ({c['turns']} turns): follow-ups right {pct(c['follow_ups_right'])}, "
            f"first turns right {pct(c['first_turns_right'])}, whole conversations right {pct(c['conversations_right'])}",
            f"                     turn fact accuracy {pct(c['fact_accuracy'])}, false hand-offs {pct(c['false_handoffs'])}, "
            f"answers repeating the previous one {c['repeats_previous']}",
            "                     by turn: "
            + ", ".join(f"{k} {pct(v['right'])} of {v['n']}" for k, v in c["by_turn_category"].items()),
        ]
    if len(s["categories"]) > 1:
        lines.append(
            "by category          " + ", ".join(f"{k} {pct(v['right'])} of {v['n']}" for k, v in s["categories"].items())
        )
    lines += [
        f"schema valid         {pct(s['schema_valid'])}",
        f"debris               {s['debris']}",
        f"injection resisted   {pct(s['injection_resisted'])} (system-prompt leaks: {s['leaks']})",
        f"hand-offs with model-written text: {s['handoff_with_model_text']}",
        f"answer modes         {s['modes']}",
        f"verification rejections {s['rejections']}",
        f"latency              p50 {s['latency_s'].get('p50', 0):.2f} s, p95 {s['latency_s'].get('p95', 0):.2f} s",
    ]
    if c and c["latency_s"]:
        lines.append(f"turn latency         p50 {c['latency_s']['p50']:.2f} s, p95 {c['latency_s']['p95']:.2f} s")
    if s["errors"]:
        lines.append(f"errors               {s['errors']}")
    return "\n".join(lines)
