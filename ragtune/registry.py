"""The model registry: answer-model versions in `<data_dir>/models`, and which one serves.

    models/registry.json        every version: GGUF, base model, dataset hash, config, eval figures
    models/<version>/model.gguf the exported GGUF, copied in so a run folder can be deleted
    models/current.json         the pointer: the version the chat API answers with, and the history

`ragtune train deploy` moves the pointer (atomically: write aside, rename); the serving side
watches the pointer file and switches engines between requests without a restart
(serve/model_switch.py). `--rollback` moves it back to the version that served before.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import NotFoundError, UserInputError

VERSION_PREFIX = "ragtune-v"


@dataclass
class ModelVersion:
    version: str
    gguf: str
    base_model: str
    dataset_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    created_at: float = 0.0


def _write_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class ModelRegistry:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "models"
        self.registry_path = self.root / "registry.json"
        self.pointer_path = self.root / "current.json"

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.registry_path.read_text())
        except FileNotFoundError:
            return {"versions": {}}

    def versions(self) -> list[ModelVersion]:
        return [ModelVersion(**v) for v in self._load()["versions"].values()]

    def get(self, version: str) -> ModelVersion:
        data = self._load()["versions"].get(version)
        if data is None:
            known = ", ".join(self._load()["versions"]) or "none yet"
            raise NotFoundError(f"no model version {version!r} in {self.registry_path} (known: {known})")
        return ModelVersion(**data)

    def register(
        self,
        gguf: Path,
        base_model: str,
        dataset_hash: str | None = None,
        config: dict | None = None,
        evaluation: dict | None = None,
        run_dir: Path | None = None,
    ) -> ModelVersion:
        """Copy the GGUF in and record a new version (ragtune-v1, ragtune-v2, ...)."""
        if not Path(gguf).is_file():
            raise UserInputError(f"{gguf} does not exist: export the model first")
        data = self._load()
        numbers = [
            int(v[len(VERSION_PREFIX) :])
            for v in data["versions"]
            if v.startswith(VERSION_PREFIX) and v[len(VERSION_PREFIX) :].isdigit()
        ]
        version = f"{VERSION_PREFIX}{max(numbers, default=0) + 1}"
        folder = self.root / version
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "model.gguf"
        shutil.copyfile(gguf, target)
        entry = ModelVersion(
            version,
            str(target.resolve()),
            base_model,
            dataset_hash,
            config or {},
            evaluation or {},
            str(run_dir) if run_dir else None,
            time.time(),
        )
        data["versions"][version] = asdict(entry)
        _write_atomic(self.registry_path, data)
        return entry

    def update_eval(self, version: str, evaluation: dict[str, Any]) -> None:
        data = self._load()
        if version not in data["versions"]:
            raise NotFoundError(f"no model version {version!r}")
        data["versions"][version]["eval"] = data["versions"][version].get("eval", {}) | evaluation
        _write_atomic(self.registry_path, data)

    # ---- the pointer -------------------------------------------------------------------
    def pointer(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.pointer_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def current(self) -> ModelVersion | None:
        pointer = self.pointer()
        if not pointer or not pointer.get("version"):
            return None
        return self.get(pointer["version"])

    def deploy(self, version: str) -> ModelVersion:
        entry = self.get(version)
        if not Path(entry.gguf).is_file():
            raise NotFoundError(f"the GGUF of {version} is gone ({entry.gguf})")
        pointer = self.pointer() or {"history": []}
        history = list(pointer.get("history", []))
        if pointer.get("version") and pointer["version"] != version:
            history.append(pointer["version"])
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.pointer_path, {"version": version, "gguf": entry.gguf, "history": history, "switched_at": time.time()})
        return entry

    def rollback(self) -> ModelVersion | None:
        """Point back at the version that served before; None means back to the configured default model."""
        pointer = self.pointer()
        if not pointer or not pointer.get("version"):
            raise UserInputError("nothing to roll back: no model version was deployed")
        history = list(pointer.get("history", []))
        previous = history.pop() if history else None
        _write_atomic(
            self.pointer_path,
            {
                "version": previous,
                "gguf": self.get(previous).gguf if previous else None,
                "history": history,
                "switched_at": time.time(),
            },
        )
        return self.get(previous) if previous else None
