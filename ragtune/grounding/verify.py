"""Verification of generated answers against the evidence the server selected.

A small model restates facts badly: it flips "cannot" into "can", writes "100%" where the source
says 99.9%, invents a "Family plan", or emits JSON debris that still fits the contract. Each rule
below rejects one such failure; `verify_answer` returns the reasons (empty: the answer stands).
The rules are lexical and deliberately strict: a false rejection only costs the extractive
fallback (the evidence sentences themselves), a false acceptance puts a wrong fact in front of a
customer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

import Stemmer

from ragtune.grounding.text import split_sentences

_stemmer = Stemmer.Stemmer("english")

DEBRIS, ECHO, LOOP, NUMBER, NAME, NEGATION, UNSUPPORTED, INCOMPLETE, REFUSAL, LEAK, DEPARTS = (
    "debris",
    "echo",
    "loop",
    "number",
    "name",
    "negation",
    "unsupported",
    "incomplete",
    "refusal",
    "leak",
    "departs",
)
# A phrased answer restates the answer the server composed from the evidence (the model phrases, the
# server decides what is said): its embedding similarity to the lead unit is at least RESTATES, and
# at most EXTRA_SHARE of its content words come from neither that answer nor the question. Chosen
# on the tuning sets' phrased answers (docs/benchmarks.md, issue 17).
RESTATES = 0.7
_PRONOUN = re.compile(r"\b(?:it|its|they|them|their)\b", re.I)
# A sentence opening with a figure or price ("9.99 EUR per month"), not a word that starts with
# digits ("2FA", "24/7").
_LEADING_FIGURE = re.compile(r"^[€$£]?\s?\d(?![\d.,]*[A-Za-z]{2,}\b)(?!\d*/\d)")
EXTRA_SHARE = 0.25
Similarity = Callable[[str, str], float]

_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:[.,:]\d+)*%?|[.!?;,:]")
_WORD = re.compile(r"[A-Za-z]{2,}")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![A-Za-z])")
_JSON_BITS = re.compile(r'[\[\]{}]|"\s*[,:]\s*"|\\"|"(?:answer|citations|confidence|handoff|quote|id)"')
_TIMESTAMP = re.compile(r"\b\d{1,4}[-/:]\d{1,2}(?:[-/:T ]\d{1,2})*(?::\d{2})?\b")
_CLAUSE = re.compile(r"[,;.!?](?=\s|$)|\s(?:and|or|but|while|whereas)\s|\n")
_REFUSAL = re.compile(
    r"\b(i (?:do not|don't|cannot|can't) (?:know|find|help|answer)|no information|not sure|unable to (?:find|answer|help)"
    r"|(?:hand|handing|transfer|pass)(?:ing)? you (?:over|on)|contact (?:our )?support for)\b",
    re.I,
)
_NAMED_THING = re.compile(
    r"\b([A-Za-z][\w\-]*)\s+(plan|plans|tier|edition|package|subscription|membership|bundle|add-on)\b", re.I
)

NEGATIONS = {"not", "no", "never", "cannot", "nothing", "none", "nor", "neither", "nobody", "without"}
STOP = set(
    """a an the and or but if then so of to in on at by for with from as is are was were be been being am do does did
have has had having it its it's this that these those there here their they them you your yours we our us i me my mine
he she his her can could will would shall should may might must about into over under up down out than too very also just
what which who whom whose when where why how all any each some such only own same other more most per via please
yes hi hello thanks thank sure happy help glad course let know get got go""".split()
)
NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fourteen": "14",
    "fifteen": "15",
    "twenty": "20",
    "thirty": "30",
    "sixty": "60",
    "ninety": "90",
    "hundred": "100",
}


def stem(word: str) -> str:
    """The Snowball (Porter 2) stem, the one BM25 and the selector use: "deleted"/"delete", "refunds"/"refunded"."""
    return _stemmer.stemWord(word.lower().strip("'-"))


def _is_negation(token: str) -> bool:
    t = token.lower()
    return (
        t in NEGATIONS
        or t.endswith("n't")
        or t.endswith("nt")
        and t in {"cant", "dont", "doesnt", "isnt", "wont", "arent", "didnt", "wasnt"}
    )


def negated(text: str) -> bool:
    """Whether `text` says no anywhere ("not", "never", "without", "can't", ...)."""
    return any(_is_negation(t) for t in _TOKEN.findall(text))


def content_stems(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(text) if w.lower() not in STOP and not _is_negation(w)}


def _negation_scopes(text: str, width: int) -> tuple[set[str], set[str], bool]:
    """(stems inside a negation's scope, stems outside any, whether a negation occurs).

    A scope is the next `width` content words after a negation, up to punctuation."""
    tokens = _TOKEN.findall(text)
    negated: set[str] = set()
    plain: set[str] = set()
    found = False
    remaining = 0
    for token in tokens:
        if token in ".!?;,:" or token in {"but", "however"}:
            remaining = 0
            continue
        if _is_negation(token):
            found, remaining = True, width
            continue
        if not token[0].isalpha() or token.lower() in STOP:
            continue
        if remaining > 0:
            negated.add(stem(token))
            remaining -= 1
        else:
            plain.add(stem(token))
    return negated, plain, found


def debris_reason(answer: str) -> str | None:
    """Why `answer` is not text a customer can read: None when it is."""
    text = answer.strip()
    if _JSON_BITS.search(text):
        return DEBRIS
    without_times = _TIMESTAMP.sub(" ", text)
    if re.search(r"https?://|www\.", text) and len(_WORD.findall(re.sub(r"\S*(?:https?://|www\.)\S*", " ", text))) < 3:
        return DEBRIS  # a bare (usually invented) URL
    if not _WORD.findall(without_times):
        return DEBRIS  # no word: punctuation, numbers, a timestamp ("10 years" is a word and a fact, and may stand)
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if letters < 0.5 * len(visible):
        return DEBRIS
    return None


def _is_loop(answer: str) -> bool:
    words = [w.lower() for w in re.findall(r"\w+", answer)]
    if any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2)):
        return True
    grams = Counter(tuple(words[i : i + 3]) for i in range(len(words) - 2))
    if grams and grams.most_common(1)[0][1] >= 3:
        return True
    return len(words) >= 16 and len(set(words)) < 0.45 * len(words)


def _numbers(text: str) -> set[str]:
    found = {n.replace(",", "") for n in _NUMBER.findall(text)}
    found |= {NUMBER_WORDS[w.lower()] for w in _WORD.findall(text) if w.lower() in NUMBER_WORDS}
    return {n.rstrip("0").rstrip(".") if "." in n else n for n in found}


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = [w.lower() for w in re.findall(r"\w+", text)]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def leaks(answer: str, secrets: Iterable[str], n: int = 6) -> bool:
    """Whether the answer repeats `n` consecutive words of any of `secrets` (the system prompt's rules)."""
    grams = _ngrams(answer, n)
    return any(grams & _ngrams(secret, n) for secret in secrets)


def _names(answer: str) -> set[str]:
    """Capitalised words inside a sentence and the word naming a plan/tier: what must not be invented."""
    names = {m.group(1) for m in _NAMED_THING.finditer(answer)}
    for sentence in re.split(r"(?<=[.!?:])\s+|\n+", answer):
        words = re.findall(r"[A-Za-z][\w\-]*", sentence)
        names |= {w for w in words[1:] if w[0].isupper() and w not in {"I", "OK"}}
    return names


def verify_answer(
    answer: str,
    question: str,
    evidence: list[str],
    allowed_names: Iterable[str] = (),
    secrets: Iterable[str] = (),
    min_support: float = 0.5,
    headings: list[str] | None = None,
    composed: tuple[str, str] | None = None,
    similarity: Similarity | None = None,
) -> list[str]:
    """Reasons to reject `answer` as a restatement of `evidence` (sentences, best first); [] when it passes.

    `allowed_names` are words that may appear although the evidence lacks them (the company's
    name); `secrets` are texts that must never be repeated (the system prompt); `headings` are the
    title and section of each evidence sentence (they say which plan a price is for); `composed`:
    (lead unit, whole text) of the answer the server composed from the same evidence, which a
    phrased answer must restate (`departs`; `similarity` of two texts, the embedding model's)."""
    reasons: list[str] = []
    allowed_names = list(allowed_names)
    if debris_reason(answer):
        return [DEBRIS]
    source = " ".join(evidence)
    answer_stems, question_stems = content_stems(answer), content_stems(question)
    source_stems = content_stems(source)
    # Nothing beyond the question's own words; a "cannot" the question lacks is news, not an echo.
    if (
        answer_stems
        and answer_stems <= question_stems
        and not (_negation_scopes(answer, 3)[2] and not _negation_scopes(question, 3)[2])
    ):
        reasons.append(ECHO)
    if _is_loop(answer):
        reasons.append(LOOP)
    if (
        _numbers(answer) - _numbers(source) - _numbers(question)
        or _misbound(answer, source)
        or _wrong_unit(answer, source)
        or _off_focus(answer, question, evidence, headings)
    ):
        reasons.append(NUMBER)
    known = {w.lower() for w in re.findall(r"[\w\-]+", f"{source} {' '.join(allowed_names)}")}
    if any(n.lower() not in known for n in _names(answer)):
        reasons.append(NAME)
    if _contradicts(answer, source) or _flipped_reply(answer, evidence[0] if evidence else "") or _restricts(answer, source):
        reasons.append(NEGATION)
    support_pool = source_stems | question_stems | {stem(w) for w in allowed_names}
    if answer_stems and len(answer_stems & support_pool) < min_support * len(answer_stems):
        reasons.append(UNSUPPORTED)
    if _incomplete(answer, answer_stems, question_stems, source_stems, evidence[0] if evidence else "", allowed_names):
        reasons.append(INCOMPLETE)
    if _REFUSAL.search(answer):
        reasons.append(REFUSAL)  # the evidence answers the question; the model says it cannot
    if leaks(answer, secrets):
        reasons.append(LEAK)
    if composed is not None and departs(answer, question, composed[0], composed[1], similarity, allowed_names):
        reasons.append(DEPARTS)
    return reasons


def departs(
    answer: str, question: str, lead: str, whole: str, similarity: Similarity | None = None, allowed_names: Iterable[str] = ()
) -> bool:
    """Whether a phrased answer says something other than the server's composed answer: it is not
    about the lead unit ("A trial can be extended once by 14 days" for "how long is the free
    trial?" when the lead is the 14-day trial), does not open with it (a further sentence first, a
    figure without its subject), drops a word of the question that the lead answers with, adds what
    neither that answer nor the question says ("... and our business plans are free"), or does not
    give the verdict the composed answer opens with (a "yes" or nothing where it says "No", a "yes"
    where it gives none)."""
    if similarity is not None and lead and similarity(answer, lead) < RESTATES:
        return True
    first = (split_sentences(answer) or [answer])[0]
    # The answer first: a bare figure ("9.99 EUR per month, ...") has lost what it is the price of,
    # and a first sentence closer to a further sentence than to the lead puts the answer second.
    if _LEADING_FIGURE.match(first) and not _LEADING_FIGURE.match(lead.strip()):
        return True
    if similarity is not None and lead:
        lead_stems = content_stems(lead)
        further = [s for s in split_sentences(whole) if s not in lead and not content_stems(s) <= lead_stems]
        if further and max(similarity(first, s) for s in further) > similarity(first, lead):
            return True
    # What ties the answer to the question stays in it: "students get 50% off" for a teacher's
    # question drops the "teachers" the lead holds. A pronoun may stand for one such word ("No, it
    # runs on Android 11 or later" for "does the app work on android 10?").
    tied = content_stems(question) & content_stems(lead)
    dropped = len(tied) - _overlap(tied, content_stems(answer))
    if dropped > (1 if _PRONOUN.search(answer) else 0):
        return True
    pool = content_stems(whole) | content_stems(question) | {stem(w) for w in allowed_names}
    # Sentence by sentence: an added sentence ("The desktop app will save you.") is not averaged
    # away by the restated ones around it.
    for sentence in [answer, *split_sentences(answer)]:
        said = content_stems(sentence)
        if said and len(said - pool) > EXTRA_SHARE * len(said):
            return True
    # The verdict is the server's: a composed "No," (or "Yes.") leads the phrasing too, and a
    # phrasing adds none ("Yes, the current status ... is shown at status.northwind.example" for
    # "is northwind down right now?"; "Yes, you can share a link in Slack" for a Teams integration).
    return _leading_reply(answer) != _leading_reply(whole)


def _wrong_unit(answer: str, source: str) -> bool:
    """A number with another unit than the evidence gives it: "10 minutes" from "10 failed
    attempts ... locked for 30 minutes", "10 days" from "5 to 10 business days"."""

    def pairs(text: str) -> set[tuple[str, str]]:
        found = set()
        for match in re.finditer(r"(?<![\w.])(\d+(?:[.,]\d+)*)%?\s+([A-Za-z]+)", text):
            if match.group(2).lower() not in STOP:
                found.add((match.group(1).replace(",", ""), stem(match.group(2))))
        return found

    evidence_pairs = pairs(source)
    evidence_numbers = {n for n, _ in evidence_pairs}
    return any(number in evidence_numbers and (number, unit) not in evidence_pairs for number, unit in pairs(answer))


def _overlap(wanted: set[str], stems: set[str]) -> int:
    """Question words found in a clause; a prefix counts ("mac" in "macOS", "sync" in "syncing")."""
    return sum(1 for w in wanted if any(s.startswith(w) or (len(s) >= 3 and w.startswith(s)) for s in stems))


def _off_focus(answer: str, question: str, evidence: list[str], headings: list[str] | None) -> bool:
    """Figures taken from the part of the evidence that does not answer the question: asked for
    the first update, "every 30 minutes" instead of "within 15 minutes"; asked about Business,
    the Enterprise figure. The evidence clauses holding figures are ranked by the question words
    they share (with their sentence's heading); the answer's figures must include one of the best."""
    answer_figures = _numbers(answer) - _numbers(question)
    if not answer_figures:
        return False
    wanted = content_stems(question)
    names = {w.lower() for sent in evidence for w in re.findall(r"[A-Za-z][\w\-]*", sent)[1:] if w[0].isupper()}
    asked_names = {stem(w) for w in re.findall(r"[\w\-]+", question.lower()) if w in names}
    scored: list[tuple[int, set[str]]] = []
    for i, sentence in enumerate(evidence):
        heading = headings[i] if headings and i < len(headings) else ""
        sentence_names = {w.lower() for w in re.findall(r"[A-Za-z][\w\-]*", sentence)[1:] if w[0].isupper()}
        for clause in _CLAUSE.split(sentence):
            figures = _numbers(clause)
            if not figures:
                continue
            # A sentence naming no plan itself takes its names from its heading ("Pricing > Business").
            context = clause if sentence_names else f"{heading} {clause}"
            stems = content_stems(f"{heading} {clause}")
            score = _overlap(wanted, stems) + 2 * len(asked_names & content_stems(context))
            scored.append((score, figures))
    if not scored:
        return False
    best = max(score for score, _ in scored)
    allowed = set().union(*(figures for score, figures in scored if score == best))
    return not answer_figures & allowed


def _incomplete(
    answer: str, answer_stems: set[str], question_stems: set[str], source_stems: set[str], best: str, known: Iterable[str] = ()
) -> bool:
    """An answer that brings nothing of the evidence ("Yes.", "no"), or leaves out every figure of
    the best evidence sentence when that sentence has figures (the price, the duration asked for)."""
    figures = _numbers(best)
    if figures and not figures & _numbers(answer):
        return True
    names = {w.lower() for w in re.findall(r"[A-Za-z][\w\-]*", best)[1:] if w[0].isupper()} - {w.lower() for w in known}
    if not figures and names and not names & {w.lower() for w in re.findall(r"[\w\-]+", answer)}:
        return True  # "When the trial ends ... the account moves to the Free plan": the answer must name the plan
    if len(_WORD.findall(answer)) < 3 and not _numbers(answer):
        return True  # a bare "Yes." / "No" states no fact
    # A "cannot" restated from the evidence is information too ("Sorry, we cannot reset it").
    negates = _negation_scopes(answer, 3)[2] and _negation_scopes(best, 2)[2]
    return not ((answer_stems & source_stems) - question_stems) and not _numbers(answer) and not negates


def _misbound(answer: str, source: str) -> bool:
    """A number stated for a plan or product the evidence gives it for no such thing.

    "The Free plan allows 250 GB" against "250 GB on every paid plan and 5 GB on the Free plan":
    every number is in the evidence, but tied to the wrong name. Names are the words the evidence
    capitalises inside a sentence (Free, Pro, Business, Vault); a number of the answer must occur
    in an evidence clause that mentions the names of its own answer clause."""
    names = {
        w.lower()
        for sent in re.split(r"(?<=[.!?])\s+", source)
        for w in re.findall(r"[A-Za-z][\w\-]*", sent)[1:]
        if w[0].isupper()
    }
    clauses = [(_numbers(c), {w.lower() for w in re.findall(r"[\w\-]+", c)}) for c in _CLAUSE.split(source)]
    for clause in _CLAUSE.split(answer):
        words = {w.lower() for w in re.findall(r"[\w\-]+", clause)}
        wanted = words & names
        for number in _numbers(clause) if wanted else ():
            if not any(number in nums and wanted <= cwords for nums, cwords in clauses):
                return True
    return False


RESTRICTIONS = {"except", "unless", "excluding", "only", "exclusively", "but"}


def _restricts(answer: str, source: str) -> bool:
    """A restriction the evidence does not make: "every hour, except for macOS" """
    words = {w.lower() for w in _WORD.findall(source)}
    return any(w.lower() in RESTRICTIONS and w.lower() not in words for w in _WORD.findall(answer))


_LEADING_REPLY = re.compile(r"\s*(no|nope|yes|yeah|yep|sure)\b", re.I)


def _leading_reply(text: str) -> str | None:
    """ "no" or "yes" when `text` opens with one ("Nope, ..." -> "no"), else None."""
    first = _LEADING_REPLY.match(text)
    return None if not first else "no" if first.group(1).lower() in {"no", "nope"} else "yes"


def _flipped_reply(answer: str, best: str) -> bool:
    """A leading "No" against an affirmative best sentence ("No, links expire after 7 days"), or a
    leading "Yes" against a negative one ("Yes" to a refund the policy rules out)."""
    reply = _leading_reply(answer)
    if reply is None or not best:
        return False
    return (reply == "no") != _negation_scopes(best, 2)[2]


def negated_claims(text: str, width: int) -> list[list[str]]:
    """The content stems after each negation (up to `width`, up to punctuation), in order, a list a negation."""
    claims: list[list[str]] = []
    remaining = 0
    for token in _TOKEN.findall(text):
        if token in ".!?;,:" or token in {"but", "however"}:
            remaining = 0
            continue
        if _is_negation(token):
            claims.append([])
            remaining = width
            continue
        if remaining > 0 and token[0].isalpha() and token.lower() not in STOP:
            claims[-1].append(stem(token))
            remaining -= 1
    return [c for c in claims if c]


def _moved_negation(answer: str, source: str) -> bool:
    """A negated claim made of two of the evidence's negated claims: "we do not sell your files"
    from "we do not sell personal data, we do not use your files to train ...". When the word after
    a negation of the answer follows a negation of the evidence, the next word may not be one the
    evidence negates only in another claim ("we cannot reset your Vault passphrase" for "We cannot
    reset it" passes: it names what "it" is)."""
    given = [set(c) for c in negated_claims(source, 4)]
    for claim in negated_claims(answer, 2):
        head, rest = claim[0], set(claim[1:])
        same = [g for g in given if head in g]
        if not same:
            continue  # a negation the evidence words differently: _contradicts' other checks judge it
        if not any(rest <= g or not (rest - g) & set().union(*(o for o in given if o is not g)) for g in same):
            return True
    return False


def _contradicts(answer: str, source: str) -> bool:
    """A negation the evidence does not have, or a statement the evidence negates."""
    ans_negated, ans_plain, ans_has = _negation_scopes(answer, 3)
    src_negated, src_plain, src_has = _negation_scopes(source, 2)
    if ans_has and not src_has:
        return True  # "No" / "you can't" where every source sentence is affirmative
    if _moved_negation(answer, source):
        return True
    # "We cannot reset it" vs "you can reset it": a stem the evidence only ever negates, stated plainly.
    return bool((src_negated - src_plain) & (ans_plain - ans_negated))
