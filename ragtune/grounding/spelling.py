"""Typos corrected against the index's own vocabulary ("shcedule backups", "camra upload").

A question word the index never uses is replaced by the index word closest to it in edit distance
(at most 1 edit for words up to 6 letters, 2 for longer ones) that starts with the same letter
(typos rarely hit the first one, while names do differ there: "gmail" is not a typo of "email"),
the more frequent one on a tie; a word with no such neighbour stays as it is (it may be a name:
another company's product, a plan that does not exist). Only the retrieval and selection query is corrected; the customer's words
are kept everywhere else.
"""

from __future__ import annotations

import re

from ragtune.grounding.text import STOPWORDS

_TOKEN = re.compile(r"[A-Za-z][a-z]+")
MIN_LENGTH = 4
# Contractions typed without the apostrophe are words, not typos ("cant" must not become "can").
CONTRACTIONS = frozenset(
    "cant wont dont doesnt isnt didnt arent wasnt werent shouldnt couldnt wouldnt havent hasnt ive youre theyre".split()
)


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (adjacent swaps count one), stopping early above `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


class Speller:
    def __init__(self, counts: dict[str, int]):
        self.counts = counts
        self._by_length: dict[int, list[str]] = {}
        for word in counts:
            self._by_length.setdefault(len(word), []).append(word)

    def correct_word(self, word: str) -> str:
        w = word.lower()
        if len(w) < MIN_LENGTH or w in self.counts or w in STOPWORDS or w in CONTRACTIONS:
            return word
        limit = 1 if len(w) <= 6 else 2
        best: tuple[int, int, str] | None = None
        for length in range(len(w) - limit, len(w) + limit + 1):
            for candidate in self._by_length.get(length, ()):
                if candidate[0] != w[0]:
                    continue
                d = edit_distance(w, candidate, limit)
                if d <= limit and (best is None or (d, -self.counts[candidate]) < (best[0], best[1])):
                    best = (d, -self.counts[candidate], candidate)
        return best[2] if best else word

    def correct(self, text: str) -> str:
        return _TOKEN.sub(lambda m: self.correct_word(m.group(0)), text)

    @classmethod
    def from_texts(cls, texts: list[str]) -> Speller:
        counts: dict[str, int] = dict.fromkeys(STOPWORDS, 1)
        for text in texts:
            for word in _TOKEN.findall(text.lower()):
                counts[word] = counts.get(word, 0) + 1
        return cls(counts)
