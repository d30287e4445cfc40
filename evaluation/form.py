"""Judged-form checks of an answer text: what a support lead would send back for rewriting.

Deliberately independent of the serving code it grades (its own sentence splitter, its own word
lists): an evaluation that shared the pipeline's splitter would pass whatever that splitter does.
These are heuristics, written down here so a reader can judge them:

- filler: the fixed preamble "Here is what our help articles say:" (or any of FILLER). It is
  stripped before the other checks, so a fragment behind it is still seen.
- sentences: split after . ! ? followed by space, and at line breaks; a list marker ("2."), a
  common abbreviation ("e.g.") or a bare "No." / "Yes." does not end a sentence (so "No. The Vault
  is included in Pro ..." is one first sentence).
- fragment, a sentence that starts mid-thought:
  * list_item: starts with a list number n > 1 ("4. Restart the desktop app.") whose item n-1 is
    not in the sentence before it (a whole procedure, or a list after its lead-in, is fine);
  * leading_number: starts with a number or price ("9.99 EUR per month, ...") other than a list
    marker or a word such as "2FA", "24/7";
  * lowercase_start: the first word is lowercase, unless it is a name written that way (iOS,
    macOS: an upper-case letter inside) or an address (a dot, @ or / inside: app.northwind.example);
  * table_row: a raw spreadsheet row: two or more "Label: value" pairs ("Add-on: Extra 1 TB
    storage, Available on: Pro"), or one short label (up to 4 words) whose value starts with a
    number or is a list of short items ("Pro: 30 days.", "Free: 10 GB, 1 user."); a lead-in to a
    numbered list ("Try these steps: 1. ...") is not one.
- off-topic: a sentence after the first that shares no content word (lower-cased, stop words
  removed, crudely stemmed to 6 letters; numbers count) with the question and the first sentence
  (a sentence opening with a back-reference, "They return to ...", takes the verdict of the
  sentence before it); a sentence quoted from the same cited passage as the first sentence is not
  off-topic (passages are sections of one document). Otherwise lexical, so a related sentence in other words ("The reset link is valid for
  1 hour." after "Use Forgot password ...") counts as off-topic: the report lists every flagged
  sentence so a reader can tell these from real ones.
- repeated: a sentence whose words are (nearly) all in an earlier sentence of the same answer
  (overlap >= 0.9 of the shorter one, at least 3 words besides stop words).
- language: the reply's language by counting function words of English, German and French; None
  when no language leads by 2 or more words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

FILLER = ("here is what our help articles say:",)
ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "approx.", "incl.", "z.b.", "bzw.", "ca.", "p.ex.")
# A bare "No." or "Yes, sorry." opens the sentence after it rather than standing alone.
_SHORT_REPLY = re.compile(r"^(?:yes|no|ja|nein|oui|non)\b[^.!?]{0,20}[.!]$", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\(?(\d{1,2})[.)]\s")
_MARKER_AT_END = re.compile(r"(?:^|\s)\(?\d{1,2}[.)]$")
_NUMBER_WORD = re.compile(r"^(?:\d+[A-Za-z]{2,}\b|\d+/\d+)")  # 2FA, 24/7: words, not a bare figure
_LEADING_NUMBER = re.compile(r"^[€$£]?\s?\d")
_LABEL = re.compile(r"(?:^|[,;]\s+)([A-Z][\w()/&' -]{0,40}?):\s+(?=\S)")
_SHORT_LABEL = re.compile(r"^([A-Z][\w()/&'-]*(?:\s+[\w()/&'-]+){0,3}):\s+(.+)$")
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")
_QUOTED = re.compile(r"[\"“„«]([^\"“”„«»]{1,60})[\"”“»]")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"https?://\S+|\bwww\.\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:example|com|de|fr|org|net)\b")
_PHONE = re.compile(r"\+\d[\d ()-]{6,}\d")

STOP = set(
    """a about above after again all also am an and any are as at be because been before being below between both but by
    can cannot could did do does doing don down during each few for from further get got had has have having he her here
    hers him his how i if in into is it its itself just let me more most my myself no nor not now of off on once only or
    other our ours out over own same she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who whom why will with would you
    your yours yourself hi hello please thanks thank ok okay yes hey guys pls u ur im i'm it's can't don't doesn't isn't
    won't what's whats dont doesnt cant wont isnt northwind cloud there's let's also still just really
    der die das und ist sind ich sie wir ihr mein meine ein eine nicht mit für auf den dem zu es wie was kann ich
    le la les et est sont je vous nous mon ma mes un une des du de au pas avec pour sur ce que qui comment""".split()
)
LANGUAGE_WORDS = {
    "en": set("the and is are you your to of for can we our with not this that it be will i a have has do does".split()),
    "de": set(
        "der das und ist sind sie ihr ihre ich nicht mit für auf ein eine einen wir zu den dem bitte kann können leider "
        "gerne unser unsere unseren ihnen es sich wird werden hat haben keine kein".split()
    ),
    "fr": set(
        "le la les et est sont vous votre vos je nous pas avec pour sur un une des du au ne ce cette peut pouvez notre "
        "nos malheureusement désolé il elle qui que".split()
    ),
}
BACK_REFERENCES = {"it", "they", "this", "these", "that", "those", "there", "then", "its", "their"}
NEGATIONS = set(
    """no not never cannot can't don't doesn't isn't aren't won't wasn't nothing none only without neither nor
    nicht kein keine keinen nein nie non pas jamais aucun aucune""".split()
)


def strip_filler(answer: str) -> tuple[str, bool]:
    """The answer without a fixed preamble, and whether it had one."""
    text = answer.strip()
    for lead in FILLER:
        if text.lower().startswith(lead):
            return text[len(lead) :].strip(), True
    return text, any(lead in text.lower() for lead in FILLER)


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for line in text.splitlines():
        pieces = [p for p in re.split(r"(?<=[.!?])\s+", line.strip()) if p]
        current = ""
        for piece in pieces:
            current = f"{current} {piece}".strip() if current else piece
            lower = current.lower()
            if _MARKER_AT_END.search(current) or lower.endswith(ABBREVIATIONS) or _SHORT_REPLY.match(current):
                continue  # "2." starts the next item; "e.g." does not end a sentence; "No." leads into one
            sentences.append(current)
            current = ""
        if current:
            sentences.append(current)
    return sentences


def _lead(sentence: str) -> str:
    return sentence.lstrip(" \t\"'“”„«»(-*•–—")


def fragment_reason(sentence: str, previous: str | None = None) -> str | None:
    """Why this sentence starts mid-thought, or None when it does not."""
    s = _lead(sentence)
    if not s:
        return None
    item = _LIST_ITEM.match(s)
    if item:
        n = int(item.group(1))
        if n <= 1 or (previous is not None and re.search(rf"(?:^|\s)\(?{n - 1}[.)]\s", _lead(previous))):
            return None
        return "list_item"
    if _LEADING_NUMBER.match(s) and not _NUMBER_WORD.match(s):
        return "leading_number"
    first = s.split()[0]
    if first[0].isalpha() and first[0].islower():
        named = any(c.isupper() for c in first[1:]) or any(c in first for c in ".@/")
        if not named:
            return "lowercase_start"
    if len(_LABEL.findall(s)) >= 2:
        return "table_row"
    label = _SHORT_LABEL.match(s)
    if label:
        value = label.group(2)
        items = [i for i in re.split(r"[,;]\s+", value.rstrip(".")) if i]
        listed = len(items) >= 2 and all(len(i.split()) <= 4 for i in items)
        if not _LIST_ITEM.match(value) and (value[0].isdigit() or listed):
            return "table_row"
    return None


def fragments(sentences: list[str]) -> list[dict[str, str]]:
    found = []
    for i, sentence in enumerate(sentences):
        reason = fragment_reason(sentence, sentences[i - 1] if i else None)
        if reason:
            found.append({"sentence": sentence, "reason": reason})
    return found


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]  # charge, charged, charges, charging: one stem
    return word[:6]


def content_terms(text: str) -> set[str]:
    terms = set()
    for token in _WORD.findall(text.lower()):
        for word in {token, *token.split("-")}:  # "two-factor" also counts as "factor"
            if word in STOP or (len(word) < 3 and not word.isdigit()):
                continue
            terms.add(_stem(word))
    return terms


def off_topic(question: str, sentences: list[str], source: Callable[[str], str | None] | None = None) -> list[str]:
    """Sentences after the first that share no content word with the question and the first sentence.

    A sentence opening with a back-reference ("They return to ...") continues the one before and
    takes its verdict. `source` names the passage a sentence was quoted from (None when not
    quoted); a sentence quoted from the same passage as the first sentence is not off-topic."""
    anchor = content_terms(question) | (content_terms(sentences[0]) if sentences else set())
    first_source = source(sentences[0]) if source and sentences else None
    found: list[str] = []
    for i in range(1, len(sentences)):
        first_word = _lead(sentences[i]).split(" ", 1)[0].lower()
        if first_word in BACK_REFERENCES:
            if found and found[-1] == sentences[i - 1]:
                found.append(sentences[i])
            continue
        terms = content_terms(sentences[i])
        if not terms or terms & anchor:
            continue
        if first_source is not None and source is not None and source(sentences[i]) == first_source:
            continue
        found.append(sentences[i])
    return found


def quoted_from(quotes: list[tuple[str, str]]) -> Callable[[str], str | None]:
    """A `source` for off_topic: the id of the citation whose quote is (in) the sentence."""
    normalised = [(" ".join(q.lower().split()), key) for q, key in quotes if len(q.strip()) >= 20]

    def source(sentence: str) -> str | None:
        s = " ".join(sentence.lower().split()).rstrip(".")
        for quote, key in normalised:
            if quote.rstrip(".") in s or (len(s) >= 20 and s in quote):
                return key
        return None

    return source


def _words(sentence: str) -> set[str]:
    return {w for w in _WORD.findall(sentence.lower()) if w not in STOP or w.isdigit()}


def similar(a: str, b: str) -> bool:
    wa, wb = _words(a), _words(b)
    small = min(len(wa), len(wb))
    return small >= 3 and len(wa & wb) / small >= 0.9


def repeated(sentences: list[str]) -> list[str]:
    return [s for i, s in enumerate(sentences) if any(similar(s, earlier) for earlier in sentences[:i])]


def repeats_previous(answer: str, previous: str) -> bool:
    """Whether at least half of this answer's sentences were already in the previous answer."""
    mine, before = split_sentences(strip_filler(answer)[0]), split_sentences(strip_filler(previous)[0])
    if not mine or not before:
        return False
    again = sum(1 for s in mine if any(similar(s, b) for b in before))
    return again * 2 >= len(mine)


def detect_language(text: str) -> str | None:
    counts = {lang: 0 for lang in LANGUAGE_WORDS}
    for word in _WORD.findall(text.lower()):
        for lang, words in LANGUAGE_WORDS.items():
            counts[lang] += word in words
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    return best if top >= 2 and top - second >= 2 else None


def negates(sentence: str) -> bool:
    words = _WORD.findall(sentence.lower())
    return any(w in NEGATIONS or w.endswith("n't") for w in words)


def echoes(question: str, answer: str) -> list[str]:
    """Customer's words quoted back in the reply ("I couldn't find anything about "educators"")."""
    q = question.lower()
    return [m for m in _QUOTED.findall(answer) if m.strip() and m.strip().lower() in q]


def has_contact(text: str) -> bool:
    return bool(_EMAIL.search(text) or _URL.search(text) or _PHONE.search(text))


def judge(question: str, answer: str, quotes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Every judged-form check of one answer (a reply that is not a hand-off); `quotes` are the
    reply's citations as (quote, passage id)."""
    body, filler = strip_filler(answer)
    sentences = split_sentences(body)
    return {
        "sentences": sentences,
        "filler": filler,
        "fragments": fragments(sentences),
        "off_topic": off_topic(question, sentences, quoted_from(quotes or [])),
        "repeated": repeated(sentences),
    }
