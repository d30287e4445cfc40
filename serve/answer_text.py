"""The answer's text out of the answer JSON as the model streams it, so a widget shows words, not JSON.

pydantic-core parses the partial JSON (`allow_partial="trailing-strings"`): an unfinished string is
returned as far as it goes, an escape sequence cut in half is left out until its rest arrives, so
the text only ever grows and each call hands on what is new. Like `ragtune.answer.parse_answer`, it
allows harmless wrapping: prose or a code fence before the object is skipped.
"""

from __future__ import annotations

from pydantic_core import from_json


class AnswerTextExtractor:
    """Pulls the decoded text of the "answer" field out of a JSON object as it streams in."""

    def __init__(self) -> None:
        self.buffer = ""
        self.emitted = 0

    def feed(self, piece: str) -> str:
        self.buffer += piece
        start = self.buffer.find("{")
        if start == -1:
            return ""
        try:
            data = from_json(self.buffer[start:], allow_partial="trailing-strings")
        except ValueError:  # not JSON (yet, or ever): nothing to show
            return ""
        text = data.get("answer") if isinstance(data, dict) else None
        if not isinstance(text, str) or len(text) <= self.emitted:
            return ""
        new, self.emitted = text[self.emitted :], len(text)
        return new
