"""Follow-up questions, resolved against the conversation.

A follow-up is retrieved alone ("Can I pay with PayPal?" after a trial question must not be
searched as the trial question) and in context: the previous question in front ("does that work
on the free plan too?" needs its subject), the previous question with the previous answer's first
sentence (the subject the customer's "it" refers to is often only in the answer), and kept to the
document the previous answer quoted (a conversation usually goes on about one page: "will I lose
my files?" after a failed payment). The chat service (serve/readings.py `choose`) goes on in that
document when it answers the question about as well as the best unit found for the question alone;
otherwise it keeps the question alone unless that is not answered or the question points back
("that", "it", "too", a bare "and for Business?").

What the assistant already said is remembered as `Said`: when the customer says the answer did not
help ("I tried that, still stuck, what now?"), units already given are left out of the evidence and
composition, so the answer moves on to the next step instead of repeating the first one. Other
follow-ups may repeat a fact ("and if I pay monthly?" after an answer that mentioned it).
"""

from __future__ import annotations

import re

from ragtune.grounding.text import collapse, stems

_GOES_ON = re.compile(r"^(?:and|also|but|so|what about|how about|and what|then|ok(?:ay)?|same)\b", re.I)
_REFERS = re.compile(r"\b(?:it|its|that|this|those|these|they|them|there|one|too|either|instead|else|still|again)\b", re.I)
MAX_CONTEXT_WORDS = 60


def goes_on(question: str) -> bool:
    """Whether the question opens by going on from the one before ("and on business?", "what about pro?")."""
    return bool(_GOES_ON.search(question.lstrip()))


def points_back(question: str) -> bool:
    """Whether the question leans on the conversation for its subject."""
    return goes_on(question) or bool(_REFERS.search(question)) or len(question.split()) <= 3


def in_context(question: str, previous_questions: list[str]) -> str:
    """The question with the previous one in front (for retrieval only)."""
    if not previous_questions:
        return question
    return f"{' '.join(previous_questions[-1].split()[:MAX_CONTEXT_WORDS])} {question}"


ANSWER_CONTEXT_WORDS = 30


def answer_subject(answer: str) -> str:
    """What the previous answer was about, for a follow-up's retrieval: its first sentence (a
    follow-up's "it" usually names the answer's subject: "how do I claim it" after an answer about
    service credits, when the question before only said "what do I get if you miss that")."""
    from ragtune.grounding.text import split_sentences

    sentences = split_sentences(answer)
    return " ".join((sentences[0] if sentences else answer).split()[:ANSWER_CONTEXT_WORDS])


_NO_PROGRESS = re.compile(
    r"\b(?:still|tried|again|didn'?t (?:work|help)|did not (?:work|help)|doesn'?t work|does not work|what else|what now|"
    r"anything else|other ideas?|next step|no luck|same (?:problem|issue|error))\b",
    re.I,
)


def no_progress(question: str) -> bool:
    """ "I tried that, still stuck": the customer wants what comes next, not what was said."""
    return bool(_NO_PROGRESS.search(question))


def tried(question: str) -> str:
    """What the customer says they already did: the message before it says that did not help
    ("already updated and did the shift reset thing" of "..., still crashes"); "" when nothing precedes."""
    found = _NO_PROGRESS.search(question)
    return question[: found.start()] if found else ""


DONE_WORDS = 2


class Said:
    """What the assistant already told the customer; `text in said` is true for a unit it gave, and
    for a step the customer says they already took (`done`: their message, "already updated and did
    the shift reset thing, still crashes"): a unit sharing at least DONE_WORDS content words with it
    beyond the words of the problem they first described (`problem`: "the app crashes")."""

    def __init__(self, answers: list[str], done: str = "", problem: str = ""):
        self._text = " \n ".join(collapse(a) for a in answers)
        self._done = set(stems(done)) - set(stems(problem))

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        if self._text and collapse(text) in self._text:
            return True
        return len(self._done) >= DONE_WORDS and len(self._done & set(stems(text))) >= DONE_WORDS

    def __bool__(self) -> bool:
        return bool(self._text) or len(self._done) >= DONE_WORDS


_PART_BREAK = re.compile(
    r"\?\s+(?=\S)|[,;]?\s+(?P<joined>and|also|plus)\s+(?=(?:what|how|does|do|is|are|can|could|will|when|where|which|who|should|would|i)\b)"
    r"|,\s+(?=(?:what|how|does|do|is|are|can|could|will|when|where|which|who|should)\b)|\.\s+(?=[A-Za-z])",
    re.I,
)


_ASKS = re.compile(r"^(?:what|how|does|do|is|are|can|could|will|when|where|which|who|why|should|would)\b", re.I)


def question_parts(question: str) -> list[str]:
    """A question asking two things ("what does business cost and what uptime do you guarantee for
    it") as its two parts, each with at least two content words; otherwise the question alone."""
    pieces: list[tuple[str, bool]] = []  # (piece, whether "and"/"also"/"plus" joins it to the next)
    start = 0
    for found in _PART_BREAK.finditer(question):
        pieces.append((question[start : found.start()], found.group("joined") is not None))
        start = found.end()
    pieces.append((question[start:], False))
    # A statement ("I'm a teacher.") belongs to the question after it, unless "and" joins a second
    # question to it: "camera upload stopped working on my android, and does the scanner read german?"
    merged: list[str] = []
    carry = ""
    for i, (raw, joined) in enumerate(pieces):
        piece = raw.strip(" ,;.")
        if not piece:
            continue
        text = f"{carry}. {piece}" if carry else piece
        asked_next = joined and bool(_ASKS.match(pieces[i + 1][0].strip(" ,;.")))
        if _ASKS.match(piece) or piece.endswith("?") or (asked_next and len(stems(piece)) >= 2):
            merged.append(text)
            carry = ""
        else:
            carry = text
    if carry:
        if merged:
            merged[-1] = f"{merged[-1]} {carry}"
        else:
            merged.append(carry)
    parts = [p for p in merged if stems(p)]
    return parts[:2] if len(parts) >= 2 else [question]
