"""Extractive composition: the answer a support agent would write from the selected evidence.

The best unit comes first, with what it needs to be read alone: a list item brings its list's
lead-in, and a short procedure comes whole and numbered; a spreadsheet row becomes a sentence that
names its columns; a sentence that starts mid-thought ("9.99 EUR per month ...") gets its heading
("Pro") in front. Further units follow only when the selector also finds them likely and they say
something new (a second document's fact for a two-part question), never one already given in this
conversation, never one that opens by referring to a sentence the customer has not been given
("They return to their original folder." without the steps before it), and never a fixed preamble.
"""

from __future__ import annotations

import re
from collections.abc import Container

from ragtune.documents import NOTES_LABEL
from ragtune.grounding.evidence import Evidence
from ragtune.grounding.text import Unit, is_row, opens_with_reference, row_sentence, stems, units

_MONEY_FIRST = re.compile(r"^[€£$]?\s?\d+(?:[.,]\d+)?\s*(?:EUR|USD|GBP|CHF|€|£|\$)")
MAX_PROCEDURE_ITEMS = 7
MAX_UNITS = 3
MAX_CHARS = 2000
SIMILAR = 0.6


def _list_of(e: Evidence) -> list[Unit]:
    """The items of the list `e` belongs to (in order)."""
    return [u for u in units(e.hit.chunk.text) if u.kind == "item" and u.block == e.unit.block]


def _starts_mid_thought(text: str) -> bool:
    first = text.lstrip()[:1]
    return bool(first) and (first.islower() or first.isdigit() or first in "€£$")


def render(e: Evidence, said: Container[str] = ()) -> tuple[str, set[str]]:
    """(text, unit texts it covers) for one evidence unit."""
    unit = e.unit if e.unit.text else Unit(e.sentence)
    if unit.kind == "row" or is_row(unit.text):
        return row_sentence(unit.text), {unit.text}
    if unit.kind == "item":
        items = _list_of(e) or [unit]
        section = e.hit.chunk.section if e.hit.chunk.section != e.hit.chunk.title else ""
        lead = unit.lead or (f"{unit.heading or section}:" if (unit.heading or section) else "")
        if len(items) <= MAX_PROCEDURE_ITEMS:
            fresh = [u for u in items if u.text not in said]
            if fresh and len(fresh) < len(items):
                items = fresh  # the rest of a procedure already given: only what is new
            lines = [f"{u.index}. {u.text}" for u in items]
            head = f"{lead}\n" if lead else ""
            return head + "\n".join(lines), {u.text for u in items} | ({lead} if lead else set())
        text = unit.text
        return (f"{lead} {text}" if lead else text), {unit.text}
    text = unit.text.removeprefix(NOTES_LABEL)
    heading = unit.heading or (e.hit.chunk.section if e.hit.chunk.section != e.hit.chunk.title else "")
    if _starts_mid_thought(text) and heading:
        text = with_subject(heading, text)
    return text, {unit.text}


def with_subject(heading: str, text: str) -> str:
    """A sentence that starts mid-thought, under a short heading naming its subject ("Pro" above
    "9.99 EUR per month ..."), with the subject put in front as a sentence would."""
    if len(heading.split()) <= 4 and _MONEY_FIRST.match(text):
        return f"{heading} costs {text}"
    if len(heading.split()) <= 4 and text[:1].isdigit():
        return f"{heading} comes with {text}"
    return f"{heading}: {text}"


def _similar(a: str, b: str) -> bool:
    sa, sb = set(stems(a)), set(stems(b))
    if not sa or not sb:
        return a.strip() == b.strip()
    return len(sa & sb) / min(len(sa), len(sb)) >= SIMILAR


def restated(unit: str, text: str) -> bool:
    """Whether `text` already says most of what `unit` says (SIMILAR of its content words)."""
    wanted = set(stems(unit))
    return bool(wanted) and len(wanted & set(stems(text))) / len(wanted) >= SIMILAR


# Besides a reference to the sentence before (text.opens_with_reference), "There ..." and "Also ..." go on from it too.
_GOES_ON_FROM = re.compile(r"^(?:there|also)\b", re.I)


def dangling(e: Evidence, *given: Container[str]) -> bool:
    """Whether a unit opens by referring to the sentence before it in its paragraph ("They return
    to their original folder.") while that sentence is in none of `given` (this answer, what the
    conversation already said): alone it cannot be understood."""
    if e.unit.kind != "sentence" or not opens_with_reference(e.unit.text):
        return False
    chunk_units = units(e.hit.chunk.text)
    i = e.position
    if not 0 < i < len(chunk_units) or chunk_units[i].text != e.unit.text:
        return False
    before = chunk_units[i - 1]
    return before.block == e.unit.block and not any(before.text in g for g in given)


def reading_order(used: list[Evidence]) -> list[int]:
    """The answer first: the best unit leads, unless it points back ("It copies ...") to a unit
    before it in its chunk, which then leads. The other units of a chunk follow in the document's
    order (the general statement before its exception); chunks in the order of their best unit."""
    if not used:
        return []
    first_rank: dict[str, int] = {}
    for i, e in enumerate(used):
        first_rank.setdefault(e.chunk_id, i)
    best = used[0]
    points_back = (opens_with_reference(best.sentence) or bool(_GOES_ON_FROM.match(best.sentence.lstrip()))) and any(
        e.chunk_id == best.chunk_id and e.position < best.position for e in used[1:]
    )

    def key(i: int) -> tuple[int, int, int]:
        e = used[i]
        lead = 0 if i == 0 and not points_back else 1
        return (first_rank[e.chunk_id], lead, e.position)

    return sorted(range(len(used)), key=key)


def compose(evidence: list[Evidence], said: Container[str] = (), parts: int = 1) -> tuple[str, list[Evidence]]:
    """(answer text, the evidence it uses), from selected evidence best first. A message asking
    `parts` questions may use one more unit per further question."""
    pieces = composed_units(evidence, said, parts)
    return join([text for text, _ in pieces]), [e for _, e in pieces]


def join(texts: list[str]) -> str:
    """Rendered units as one answer: a list stands on its own lines, sentences follow each other."""
    answer = ""
    for part in texts:
        if not answer:
            answer = part
        else:
            answer += ("\n" if "\n" in part or "\n" in answer else " ") + part
    return answer[:MAX_CHARS]


def composed_units(evidence: list[Evidence], said: Container[str] = (), parts: int = 1) -> list[tuple[str, Evidence]]:
    """The units of the extractive answer in reading order, each rendered (see `compose`)."""
    limit = MAX_UNITS + max(0, parts - 1)
    texts_out: list[str] = []
    covered: set[str] = set()
    used: list[Evidence] = []
    for e in evidence:
        if len(used) >= limit:
            break
        if e.sentence in covered or (used and e.sentence in said):
            continue
        if used and dangling(e, covered, said):
            continue
        text, texts = render(e, said)
        if any(_similar(text, p) for p in texts_out):
            continue
        texts_out.append(text)
        covered |= texts
        used.append(e)
    return [(texts_out[i], used[i]) for i in reading_order(used)]
