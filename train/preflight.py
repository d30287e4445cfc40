"""Checks that run before training's long passes, so an operator's mistake costs a second, not an hour.

- The training packages (the `train` extra: transformers, peft, TRL, ...) are looked up without
  importing them (importing torch and transformers alone takes seconds); a missing one is one line
  naming the install step, never a traceback from deep inside a library.
- `prepare` retrieves distractors and checks each company example against the live index; the
  documents the examples cite must be in it, or every record would be dropped (or built from the
  wrong evidence) after a long pass. A missing or empty index, or one without those documents, is
  one line saying to run `ragtune ingest`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ragtune.errors import UserInputError
from ragtune.index import KnowledgeIndex

# Module names of the `train` extra in pyproject.toml (the import name of each distribution).
TRAIN_PACKAGES = ("transformers", "peft", "trl", "datasets", "accelerate", "gguf", "sentencepiece", "matplotlib")
INSTALL_STEP = "bash scripts/setup.sh --train (or .venv/bin/pip install -e '.[train]')"


def missing_packages(names: tuple[str, ...] = TRAIN_PACKAGES) -> list[str]:
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken install counts as missing
            found = False
        if not found:
            missing.append(name)
    return missing


def require_training_packages(step: str) -> None:
    missing = missing_packages()
    if missing:
        raise UserInputError(
            f"`ragtune train {step}` needs the training packages, and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed: run {INSTALL_STEP}"
        )


def cited_documents(example_files: list[Path]) -> set[str]:
    """The documents (paths under the knowledge folder) that the company examples cite."""
    from train.sources import read_examples

    return {pair.doc for path in example_files for pair in read_examples(path) if pair.doc}


def check_examples_indexed(index: KnowledgeIndex, example_files: list[Path]) -> int:
    """Raise UserInputError unless the current index version holds every document the examples
    cite; returns how many documents were checked."""
    manifest = index.current_manifest()
    if manifest is None or not manifest.documents:
        raise UserInputError(
            "the knowledge index is empty: run `ragtune ingest` (it indexes ingest.source_dir, knowledge/ by default) "
            "before `ragtune train prepare`"
        )
    wanted = cited_documents(example_files)
    missing = sorted(wanted - set(manifest.documents))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UserInputError(
            f"{len(missing)} of the {len(wanted)} documents the training examples cite are not in the index "
            f"(version {manifest.version}): {shown}; run `ragtune ingest` over the folder that holds them "
            "(ingest.source_dir) before `ragtune train prepare`"
        )
    return len(wanted)
