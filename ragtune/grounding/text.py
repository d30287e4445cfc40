"""The one sentence splitter, and the structure of a chunk's text.

Everything that cuts text into sentences calls this module: ingestion (chunk boundaries and
overlaps), evidence selection, composition, verification, training and evaluation. A chunk's
text is read as blocks (paragraphs, lists, table rows) so that a selected sentence keeps what it
needs to be understood: a list item knows its list's lead-in ("To restore a file:") and its
neighbours (the rest of a short procedure), and a row from a spreadsheet knows its columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_LIST_LINE = re.compile(r"^\s*(?:[-*\u2022]|(\d{1,2})[.)])\s+(.*)$")
_INLINE_NUMBER = re.compile(r"(?:^|(?<=\s))(\d{1,2})[.)]\s+(?=\S)")
_ROW_LABEL = re.compile(r"(?:^|, )([A-Z][A-Za-z0-9 ()/&'.-]{0,40}): ")
MIN_SENTENCE_WORDS = 4
MAX_HEADING_WORDS = 6
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
STOPWORDS = frozenset(
    """a an the and or but if then so of to in on at by for with from as is are was were be been being am do does did
have has had having it its this that these those there here their they them you your yours we our us i me my mine
he she his her can could will would shall should may might must about into over under up down out than too very also just
what which who whom whose when where why how all any each some such only own same other more most per via please
hi hello thanks thank get got go much many long like want wanted need needed know tell anything something really ok
okay hey u ur im pls plz lot lots way thing things able would could whats hows""".split()
) | frozenset(STOPWORDS_EN_PLUS)
_stemmer = Stemmer.Stemmer("english")


@dataclass(frozen=True)
class Unit:
    """One piece of a chunk that can be evidence: a sentence, a list item or a table row.

    `text` is verbatim (whitespace collapsed; a list item without its marker). `block` numbers the
    paragraph or list it belongs to, `index` is an item's place in its list (1-based; 0 otherwise),
    `lead` the sentence introducing the list, `heading` an inline heading above the block."""

    text: str
    heading: str = ""
    kind: str = "sentence"  # "sentence" | "item" | "row"
    block: int = 0
    index: int = 0
    lead: str = ""


def collapse(text: str) -> str:
    return " ".join(text.split())


def split_sentences(text: str, min_words: int = MIN_SENTENCE_WORDS) -> list[str]:
    """Sentences of a text, verbatim (whitespace collapsed); a fragment shorter than `min_words`
    words ("Yes.", "Free:") joins the sentence after it (or, at the end, the one before)."""
    pieces = [collapse(p) for p in SENTENCE_END.split(text)]
    sentences: list[str] = []
    carry = ""
    for piece in pieces:
        if not piece:
            continue
        piece = f"{carry} {piece}".strip() if carry else piece
        if len(piece.split()) < min_words:
            carry = piece
            continue
        carry = ""
        sentences.append(piece)
    if carry:
        if sentences:
            sentences[-1] = f"{sentences[-1]} {carry}"
        else:
            sentences.append(carry)
    return sentences


def _is_heading(line: str, following: str) -> bool:
    """A short line without closing punctuation followed by a line starting a sentence: a heading
    that text extraction (PDF) left inline ("Annual plans" above "If you are not satisfied...")."""
    words = line.split()
    return (
        0 < len(words) <= MAX_HEADING_WORDS
        and line.rstrip()[-1] not in ".!?:;,"
        and following.lstrip()[:1].isupper()
        and not _LIST_LINE.match(line)
    )


def row_pairs(text: str) -> list[tuple[str, str]]:
    """The (column, value) pairs of a table row as ingestion writes spreadsheets and CSV files
    ("Column: value, Column: value"); [] for text that is not one."""
    flat = collapse(text)
    labels = list(_ROW_LABEL.finditer(flat))
    if len(labels) < 2 or labels[0].start() != 0:
        return []
    pairs = []
    for i, m in enumerate(labels):
        end = labels[i + 1].start() if i + 1 < len(labels) else len(flat)
        pairs.append((m.group(1).strip(), flat[m.end() : end].strip()))
    return pairs


def is_row(paragraph: str) -> bool:
    return "\n" not in paragraph.strip() and bool(row_pairs(paragraph))


def row_sentence(row: str) -> str:
    """A table row as a sentence naming its columns: "Add-on: Extra 1 TB storage, Available on: Pro,
    Price per month (EUR): 4.99" -> "Extra 1 TB storage (add-on): available on Pro; price per month (EUR) 4.99."."""
    pairs = row_pairs(row)
    if not pairs:
        return row
    (first_col, first_val), rest = pairs[0], pairs[1:]
    parts = [f"{col[:1].lower()}{col[1:]} {val}".strip() for col, val in rest]
    sentence = f"{first_val} ({first_col[:1].lower()}{first_col[1:]}): {'; '.join(parts)}"
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def _inline_items(paragraph: str) -> tuple[str, list[str]] | None:
    """A numbered list written on one line ("... 1. Do this. 2. Do that. 3. ..."): (lead, items)."""
    marks = [m for m in _INLINE_NUMBER.finditer(paragraph)]
    expected, chosen = 1, []
    for m in marks:
        if int(m.group(1)) == expected:
            chosen.append(m)
            expected += 1
    if len(chosen) < 2:
        return None
    lead = paragraph[: chosen[0].start()].strip()
    items = []
    for i, m in enumerate(chosen):
        end = chosen[i + 1].start() if i + 1 < len(chosen) else len(paragraph)
        items.append(collapse(paragraph[m.end() : end]))
    return lead, [item for item in items if item]


def _blocks(text: str) -> list[tuple[str, str]]:
    """(inline heading, paragraph) pairs; paragraphs are separated by blank lines, and a list's lines
    are kept together with the line that introduces them."""
    lines = text.split("\n")
    blocks: list[tuple[str, list[str]]] = []
    heading = ""
    current: list[str] = []

    def flush() -> None:
        nonlocal current
        if any(line.strip() for line in current):
            blocks.append((heading, current))
        current = []

    for i, line in enumerate(lines):
        if not line.strip():
            # A blank line between list items (or between a lead-in and its list) does not end the list.
            following = next((ln for ln in lines[i + 1 :] if ln.strip()), "")
            previous = next((ln for ln in reversed(current) if ln.strip()), "")
            if current and _LIST_LINE.match(following) and (_LIST_LINE.match(previous) or previous.rstrip().endswith(":")):
                continue
            flush()
            continue
        following = next((ln for ln in lines[i + 1 :] if ln.strip()), "")
        previous = next((ln for ln in reversed(current) if ln.strip()), "")
        # A heading may sit inside a block (PDF extraction keeps no blank line around it); a short
        # line that merely continues a sentence (the line before it ends without punctuation) is not one.
        if _is_heading(line, following) and (not previous or previous.rstrip()[-1:] in ".!?:"):
            flush()
            heading = collapse(line)
            continue
        current.append(line)
    flush()
    return [(h, "\n".join(body)) for h, body in blocks]


def units(text: str) -> list[Unit]:
    """The units of a chunk's text in reading order (see Unit)."""
    out: list[Unit] = []
    for block, (heading, paragraph) in enumerate(_blocks(text)):
        lines = [ln for ln in paragraph.split("\n") if ln.strip()]
        list_lines = [ln for ln in lines if _LIST_LINE.match(ln)]
        if list_lines and len(list_lines) >= 2:
            lead_lines = [ln for ln in lines[: lines.index(list_lines[0])]]
            lead_sentences = split_sentences(" ".join(lead_lines)) if lead_lines else []
            out += [Unit(s, heading, "sentence", block) for s in lead_sentences]
            lead = lead_sentences[-1] if lead_sentences else ""
            index = 0
            for ln in lines[lines.index(list_lines[0]) :]:
                m = _LIST_LINE.match(ln)
                if m:
                    index += 1
                    out.append(Unit(collapse(m.group(2)), heading, "item", block, index, lead))
                elif out and out[-1].kind == "item":  # a continuation line of the item above
                    prev = out[-1]
                    out[-1] = Unit(f"{prev.text} {collapse(ln)}", heading, "item", block, prev.index, lead)
            continue
        flat = collapse(paragraph)
        if is_row(flat):
            out.append(Unit(flat, heading, "row", block))
            continue
        inline = _inline_items(flat)
        if inline is not None:
            lead_text, items = inline
            lead_sentences = split_sentences(lead_text) if lead_text else []
            out += [Unit(s, heading, "sentence", block) for s in lead_sentences]
            lead = lead_sentences[-1] if lead_sentences else ""
            out += [Unit(item, heading, "item", block, i, lead) for i, item in enumerate(items, start=1)]
            continue
        out += [Unit(s, heading, "sentence", block) for s in split_sentences(flat)]
    return out


def words(text: str) -> list[str]:
    """Lower-cased word tokens (numbers included)."""
    return _WORD.findall(text.lower())


def stems(text: str, keep_stopwords: bool = False) -> list[str]:
    """Stemmed content words (PyStemmer's English Snowball stemmer, the one BM25 uses)."""
    tokens = [w for w in words(text) if keep_stopwords or w not in STOPWORDS]
    return _stemmer.stemWords(tokens)


def stem_of(word: str) -> str:
    return _stemmer.stemWord(word.lower())


_REFERS_BACK = re.compile(r"^(?:it|its|they|their|them|this|these|that|those|then|both|such|after that)\b", re.I)


def opens_with_reference(sentence: str) -> bool:
    """Whether a sentence opens with a word that refers to the sentence before it ("They return to
    their original folder.", "After that they are deleted"); "There is" and "Also" need not."""
    return bool(_REFERS_BACK.match(sentence.lstrip()))
