"""Walking a knowledge folder the one way ingestion and the admin API both see it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path


def visible_entries(root: Path, on_error: Callable[[Path, OSError], None] | None = None) -> Iterator[os.DirEntry]:
    """Every entry below `root` that is not a real folder; links are not followed.

    Hidden names (.git, .DS_Store, upload temporaries) are skipped: they are not documents. A folder
    that cannot be read is passed to `on_error` and skipped.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if on_error is not None:
                on_error(Path(folder), exc)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            else:
                yield entry
