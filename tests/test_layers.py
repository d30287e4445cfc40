"""The house's walls: the core imports nothing above it, the parts never import each other, and
the serving process never pulls in the training stack; evaluation/ and cli/ compose from above. Read from the source (every import
statement, lazy ones inside functions included), so a new wrong import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAINING_STACK = {
    "torch",
    "transformers",
    "peft",
    "trl",
    "datasets",
    "unsloth",
    "bitsandbytes",
    "accelerate",
    "sentence_transformers",
}
FORBIDDEN = {
    "ragtune": {"ingest", "serve", "train", "evaluation", "cli"},
    "ingest": {"serve", "train", "evaluation", "cli"},
    "serve": {"ingest", "train", "evaluation", "cli"} | TRAINING_STACK,
    "train": {"ingest", "serve", "evaluation", "cli"},
    "evaluation": {"cli"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_it_must_not(package):
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in imported_packages(path) & FORBIDDEN[package]
    }
    assert not wrong, sorted(wrong)


def test_the_check_sees_lazy_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from serve.app import create_app\n    import torch.nn as nn\n")
    assert imported_packages(module) == {"serve", "torch"}
