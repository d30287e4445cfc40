"""A direct "No" for a yes/no question the evidence answers in the negative by what it leaves out.

"Is the Vault on the Free plan?" is answered by "The Vault is included in Pro, Business and
Enterprise plans.": the right sentence, but a customer has to work out the "no" from a list. The
documents themselves say which names stand side by side (plans, regions, platforms, languages):
names the company lists together ("Free and Pro", "Pro, Business and Enterprise") are alternatives
of one kind, learned from the index's own text each time it changes, not from a word list. When a
yes/no question asks about one alternative and the answering sentence names others of its kind but
not it, the answer leads with "No," (a hard constraint, like a number that is not in the evidence:
the thing asked about is absent from the evidence's list). Nothing is added when the sentence
names the alternative asked about or already says no; "yes" is never inferred (the question may
hinge on something else: "is the free trial 30 days?"). Numbers the evidence rules out say "no" the
same way: a version below the documents' requirement ("android 10" against "Android 11 or later")
and a span longer than every window the sentence gives ("renewed 2 months ago" against "within 30
days").

The same alternatives resolve follow-ups: "is it on the free plan?" after an answer about the Vault
(`asks_about_alternative`, answered by the unit that lists the plans), and a bare "and on
business?" after a question about the Free plan, read as that question about Business (`swapped_in`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ragtune.grounding.followup import goes_on
from ragtune.grounding.text import STOPWORDS, opens_with_reference, words
from ragtune.grounding.verify import content_stems, negated, negated_claims

# A name as the documents write it: capitalised, one or two words ("Pro", "Google Drive", "Microsoft 365").
_NAME = r"[A-Z][\w+-]*(?: [A-Z0-9][\w+-]*)?"
_LIST = re.compile(rf"(?<![\w.])({_NAME}(?:, {_NAME})*,? (?:and|or) {_NAME})\b")
_SPLIT = re.compile(r",? (?:and|or) |, ")
_YES_NO = re.compile(
    r"^\W*(?:(?:and|so|but|ok(?:ay)?|also|then|hi|hello|hey|please)\W+)*"
    r"(?:is|are|am|was|were|does|do|did|can|could|will|would|should|has|have|may|isn'?t|aren'?t|doesn'?t|don'?t|can'?t|won'?t)\b",
    re.I,
)
_WH = re.compile(r"\b(?:what|how|when|where|which|who|whom|whose|why)\b", re.I)
_MID_WORD = re.compile(r"(?<=[a-z,] )([A-Za-z][a-z]+)\b")
# Besides stop words, what a bare follow-up may say around the name it swaps in ("and the business plan instead?").
_ELLIPSIS_WORDS = ("plan", "plans", "account", "tier", "instead")


def _whole(name: str) -> str:
    """A pattern for `name` as a whole word or phrase (not inside "pro-rated" or "business-critical")."""
    return rf"(?<![\w-]){re.escape(name)}(?![\w-])"


def _name(text: str) -> str:
    tokens = text.split()
    while tokens and tokens[0].lower() in STOPWORDS:  # "On Pro and Business": "On" is no name
        tokens = tokens[1:]
    return " ".join(tokens).lower()


@dataclass(frozen=True)
class Alternatives:
    """Names the documents list side by side, grouped: each name maps to the names of its kind."""

    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    proper: frozenset[str] = frozenset()  # words the documents capitalise mid-sentence ("Vault", "Northwind")

    @classmethod
    def from_texts(cls, texts: list[str]) -> Alternatives:
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for text in texts:
            for match in _LIST.finditer(text):
                names = [n for n in (_name(part) for part in _SPLIT.split(match.group(1))) if len(n) > 1]
                for other in names[1:]:
                    parent[find(other)] = find(names[0])
        members: dict[str, set[str]] = {}
        for name in parent:
            members.setdefault(find(name), set()).add(name)
        groups = {n: frozenset(g) for g in members.values() if len(g) >= 2 for n in g}
        capital: dict[str, int] = {}
        lower: dict[str, int] = {}
        for text in texts:
            for match in _MID_WORD.finditer(text):
                word = match.group(1)
                counts = capital if word[0].isupper() else lower
                counts[word.lower()] = counts.get(word.lower(), 0) + 1
        proper = frozenset(w for w, n in capital.items() if n > lower.get(w, 0))
        return cls(groups, proper)

    def named_in(self, text: str) -> list[str]:
        """The alternatives `text` names (case aside), longest first."""
        low = text.lower()
        found = [n for n in self.groups if re.search(_whole(n), low)]
        return sorted(found, key=len, reverse=True)


def is_yes_no(question: str, previous: str | None = None) -> bool:
    """A question answered by yes or no: it opens with a verb ("is it on the free plan?"), or, right
    after such a question, it only names something else ("and on the free plan?")."""
    if _YES_NO.search(question):
        return True
    if previous is not None and not _WH.search(question) and goes_on(question):
        return bool(_YES_NO.search(previous))
    return False


_REFERS_BACK = re.compile(r"\b(?:it|its|that|this|they|them|those|these)\b", re.I)


def asks_about_alternative(question: str, alternatives: Alternatives, previous: str | None = None) -> str | None:
    """The alternative a follow-up asks about for what came before ("is it on the free plan?",
    "does that work on pro too?", "and on the free plan?" after a yes/no question), else None."""
    if previous is None or not is_yes_no(question, previous):
        return None
    if not (_REFERS_BACK.search(question) or goes_on(question)):
        return None
    asked = alternatives.named_in(question)
    return asked[0] if len(asked) == 1 else None


def swapped(question: str, previous: str | None, alternatives: Alternatives) -> str | None:
    """The previous question about another alternative, when the follow-up only names that one
    ("and on business?" after "how many versions do you keep on free?" -> "how many versions do
    you keep on business?"); None when the follow-up says more than that (a question of its own)."""
    if not previous or not alternatives.groups:
        return None
    asked = alternatives.named_in(question)
    before = alternatives.named_in(previous)
    if len(asked) != 1 or asked[0] in before:
        return None
    name = asked[0]
    kin = [b for b in before if b in alternatives.groups[name]]
    if len(kin) != 1:
        return None
    rest = re.sub(_whole(name), " ", question.lower())
    known = set(words(previous)) | set(_ELLIPSIS_WORDS)
    extra = [w for w in words(rest) if w not in STOPWORDS and w not in known and len(w) > 2]
    if len(extra) > 1 or (len(question.split()) > 6 and not goes_on(question)):
        return None
    return re.sub(_whole(kin[0]), name, previous, count=1, flags=re.I)


def swapped_in(question: str, previous: list[str], alternatives: Alternatives) -> str | None:
    """`swapped` against the conversation's last questions, each bare follow-up among them read as
    the question it stood for ("enterprise?" after "and on business?" after a question about Pro)."""
    base: str | None = None
    for asked in previous[-3:]:
        base = (swapped(asked, base, alternatives) if base else None) or asked
    return swapped(question, base, alternatives)


def names_kind_of(unit: str, name: str, alternatives: Alternatives) -> bool:
    """Whether `unit` names alternatives of `name`'s kind ("... included in Pro, Business and Enterprise")."""
    return bool(set(alternatives.named_in(unit)) & alternatives.groups.get(name, frozenset()))


_VERSION = r"\d+(?:\.\d+)?"
_ASKED_VERSION = re.compile(rf"\b([a-z][a-z]+) ?({_VERSION})\b", re.I)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def below_requirement(question: str, unit: str) -> bool:
    """A version the question names that the unit's requirement rules out: "android 10" against
    "Android 11 or later", "windows 7" against "Windows 10 and 11" (a number, a hard constraint)."""
    for name, number in _ASKED_VERSION.findall(question):
        if name.lower() in STOPWORDS:
            continue
        asked = _version(number)
        at_least = re.search(rf"\b{re.escape(name)} ({_VERSION})(?: or (?:later|newer|higher|above)|\+)", unit, re.I)
        if at_least:
            return asked < _version(at_least.group(1))
        listed = re.search(rf"\b{re.escape(name)} ((?:{_VERSION}, )*{_VERSION},? (?:and|or) {_VERSION})\b", unit, re.I)
        if listed:
            return asked not in {_version(v) for v in re.findall(_VERSION, listed.group(1))}
    return False


_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
_SPAN = r"(\d+|an?|one)[ -](day|week|month|year)s?"
_ASKED_SPAN = re.compile(rf"\b{_SPAN}\b", re.I)
_WINDOW = re.compile(rf"\b(?:within|for up to|up to|for)(?: the first)? {_SPAN}\b", re.I)


def _days(number: str, unit: str) -> int:
    count = 1 if number.lower() in ("a", "an", "one") else int(number)
    return count * _DAYS[unit.lower()]


def past_window(question: str, unit: str) -> bool:
    """A span the question names that is longer than the window the unit gives ("renewed 2 months
    ago, can I still get a refund?" against "within 30 days of the purchase or renewal date")."""
    asked = _ASKED_SPAN.findall(question)
    if len(asked) != 1 or not _WINDOW.search(unit):
        return False
    # Longer than every span the unit names: "30 days on Pro and 180 days on Business" is no "no"
    # to 3 months, whichever plan the customer is on.
    return _days(*asked[0]) > max(_days(*w) for w in _ASKED_SPAN.findall(unit))


def says_no(question: str, answer_unit: str, alternatives: Alternatives, previous: str | None = None) -> bool:
    """Whether the answer to a yes/no question is "no" by what `answer_unit` (the sentence that
    answers it) leaves out: the question asks about one alternative, the unit names others of its
    kind but not it, a version below what the unit requires, or a span longer than the window it
    gives; and the unit does not itself say no already."""
    if not is_yes_no(question, previous) or negated(answer_unit) or "only" in words(answer_unit):
        return False
    if below_requirement(question, answer_unit) or past_window(question, answer_unit):
        return True
    if not alternatives.groups:
        return False
    asked = alternatives.named_in(question)
    if len(asked) != 1:
        return False  # none asked about, or a choice between two ("free or pro?")
    name = asked[0]
    named = set(alternatives.named_in(answer_unit))
    return name not in named and bool(named & alternatives.groups[name])


def follows_with_no(question: str, lead: str, follower: str, previous: str | None = None) -> bool:
    """Whether the sentence that goes on from the lead says no to what a yes/no question asks while
    the lead says nothing either way: "do you use your own backups to restore a single file for me?"
    -> "Our own backups are ... kept for 35 days for disaster recovery. They are not used to restore
    single files for customers." `follower` must be the lead's next sentence in its paragraph and
    open by referring to it, and what it negates must be what the question asks about."""
    if not is_yes_no(question, previous) or negated(lead) or not opens_with_reference(follower):
        return False
    asked = content_stems(question)
    return any(set(claim) & asked for claim in negated_claims(follower, 2))


def lead_with_no(answer: str, proper: frozenset[str] = frozenset()) -> str:
    """The answer with a direct "No," in front ("No, the Vault is included in ..."); its first word
    keeps its capital only when it is a name (`proper`) or an abbreviation."""
    first, _, rest = answer.partition(" ")
    word = first.strip('.,:;!?"()')
    if word[:1].isupper() and word[1:].islower() and word.lower() not in proper:
        first = first.lower()
    return f"No, {first} {rest}".rstrip() if rest else f"No, {first}"
