"""The answer's text out of the answer JSON as the model streams it, so a widget shows words, not JSON."""

from __future__ import annotations

import json


class AnswerTextExtractor:
    """Pulls the decoded text of the "answer" field out of a JSON object as it streams in."""

    def __init__(self) -> None:
        self.buffer = ""
        self.start: int | None = None
        self.emitted = 0
        self.closed = False

    def feed(self, piece: str) -> str:
        self.buffer += piece
        if self.closed:
            return ""
        if self.start is None:
            key = self.buffer.find('"answer"')
            if key == -1:
                return ""
            quote = self.buffer.find('"', self.buffer.find(":", key + 8) + 1) if ":" in self.buffer[key + 8 :] else -1
            if quote == -1:
                return ""
            self.start = quote + 1
        body, end = self.buffer[self.start :], None
        i = 0
        while i < len(body):
            if body[i] == "\\":
                i += 2
                continue
            if body[i] == '"':
                end = i
                break
            i += 1
        safe = body[:end] if end is not None else body[: _safe_cut(body)]
        try:
            decoded = json.loads(f'"{safe}"')
        except json.JSONDecodeError:
            return ""
        self.closed = end is not None
        new, self.emitted = decoded[self.emitted :], len(decoded)
        return new


def _safe_cut(body: str) -> int:
    """Length of the prefix that does not end inside an escape sequence."""
    cut = len(body)
    backslash = body.rfind("\\", max(0, cut - 6))
    if backslash != -1:
        escape = body[backslash:]
        complete = len(escape) >= 2 and (escape[1] != "u" or len(escape) >= 6)
        if not complete:
            cut = backslash
    return cut
