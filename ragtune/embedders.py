"""Tuned embedding models (retrievers): versions in `<data_dir>/embedders`, and which one ingests.

    embedders/registry.json          every version: base model, training data, config, eval figures
    embedders/<version>/model/       the sentence-transformers folder (served through its ONNX export)
    embedders/current.json           the pointer: the version new index versions are embedded with
    embedders/<version>/model/ragtune_fusion.json
                                     the RRF weights chosen for this model on dev data (`train retriever
                                     fusion`): the retriever fuses with them when it searches an index
                                     version embedded with this model (`retrieval.tuned_fusion`)

A deployed version replaces the configured `embedding.model` it was tuned from: `effective_embedding`
is what ingestion embeds with. Searching never reads this pointer: a query is embedded with the model
its index version was built with (the retriever follows the manifest), so moving the pointer and
publishing the re-embedded index can never mix two vector spaces in one search. `ragtune train
retriever deploy` re-embeds the knowledge folder into a new index version first (the old one serves
meanwhile) and moves the pointer after; `--rollback` moves it back.
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
from ragtune.settings import EmbeddingSettings, Settings

VERSION_PREFIX = "retriever-v"
FUSION_FILE = "ragtune_fusion.json"


@dataclass
class EmbedderVersion:
    version: str
    model_dir: str
    base_model: str
    dataset_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    created_at: float = 0.0
    fusion: dict[str, Any] = field(default_factory=dict)  # the dev-chosen RRF weights (FUSION_FILE)


@dataclass(frozen=True)
class Fusion:
    """How a hybrid search fuses its two rankings: weight / (rrf_k + rank) summed per chunk."""

    dense_weight: float
    bm25_weight: float
    rrf_k: int


def write_fusion(model_dir: Path, fusion: Fusion, evidence: dict[str, Any] | None = None) -> None:
    """Record the fusion weights chosen for the model in `model_dir` (carried with the folder)."""
    _write_atomic(Path(model_dir) / FUSION_FILE, asdict(fusion) | {"chosen_on": evidence or {}})


def read_fusion(model: str) -> Fusion | None:
    """The fusion weights a model folder carries, or None (a model id, or a folder without them)."""
    path = Path(model) / FUSION_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"cannot read the fusion weights in {path}: {exc}; fix or delete the file") from exc
    try:
        fusion = Fusion(float(data["dense_weight"]), float(data["bm25_weight"]), int(data["rrf_k"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserInputError(f"{path} needs numbers dense_weight, bm25_weight and rrf_k ({exc}); fix or delete the file") from exc
    if fusion.dense_weight < 0 or fusion.bm25_weight < 0 or fusion.rrf_k < 1:
        raise UserInputError(f"{path}: weights must be >= 0 and rrf_k >= 1, got {asdict(fusion)}")
    return fusion


def _write_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def same_model(a: str, b: str) -> bool:
    """Whether two `embedding.model` values name the same model (an alias and its folder included)."""
    from ragtune.embedding import resolve_model

    def norm(name: str) -> str:
        resolved = resolve_model(name)
        return str(Path(resolved).resolve()) if Path(resolved).is_dir() else resolved.lower()

    return norm(a) == norm(b)


class EmbedderRegistry:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "embedders"
        self.registry_path = self.root / "registry.json"
        self.pointer_path = self.root / "current.json"

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.registry_path.read_text())
        except FileNotFoundError:
            return {"versions": {}}

    def versions(self) -> list[EmbedderVersion]:
        return [EmbedderVersion(**v) for v in self._load()["versions"].values()]

    def get(self, version: str) -> EmbedderVersion:
        versions = self._load()["versions"]
        if version not in versions:
            known = ", ".join(versions) or "none yet"
            raise NotFoundError(f"no retriever version {version!r} in {self.registry_path} (known: {known})")
        return EmbedderVersion(**versions[version])

    def register(
        self,
        model_dir: Path,
        base_model: str,
        dataset_hash: str | None = None,
        config: dict | None = None,
        evaluation: dict | None = None,
        run_dir: Path | None = None,
    ) -> EmbedderVersion:
        """Copy a sentence-transformers folder in and record a new version (retriever-v1, -v2, ...)."""
        model_dir = Path(model_dir)
        if not (model_dir / "modules.json").is_file():
            raise UserInputError(f"{model_dir} is not a sentence-transformers model folder (no modules.json)")
        data = self._load()
        numbers = [int(v[len(VERSION_PREFIX) :]) for v in data["versions"] if v[len(VERSION_PREFIX) :].isdigit()]
        version = f"{VERSION_PREFIX}{max(numbers, default=0) + 1}"
        target = self.root / version / "model"
        if target.exists():  # the leftover of a register that died before writing the registry
            shutil.rmtree(target)
        shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("checkpoint-*", "*.onnx"))
        entry = EmbedderVersion(
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

    def set_fusion(self, version: str, fusion: Fusion, evidence: dict[str, Any]) -> None:
        """Record `version`'s fusion weights: in its model folder (which the retriever reads) and here."""
        data = self._load()
        if version not in data["versions"]:
            raise NotFoundError(f"no retriever version {version!r}")
        write_fusion(Path(data["versions"][version]["model_dir"]), fusion, evidence)
        data["versions"][version]["fusion"] = asdict(fusion) | {"chosen_on": evidence}
        _write_atomic(self.registry_path, data)

    def update_eval(self, version: str, evaluation: dict[str, Any]) -> None:
        data = self._load()
        if version not in data["versions"]:
            raise NotFoundError(f"no retriever version {version!r}")
        data["versions"][version]["eval"] = data["versions"][version].get("eval", {}) | evaluation
        _write_atomic(self.registry_path, data)

    # ---- the pointer -------------------------------------------------------------------
    def pointer(self) -> dict[str, Any]:
        try:
            return json.loads(self.pointer_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"version": None, "history": []}

    def current(self) -> EmbedderVersion | None:
        version = self.pointer().get("version")
        return self.get(version) if version else None

    def previous(self) -> str | None:
        """The version a rollback goes back to (None: the configured model)."""
        history = self.pointer().get("history") or []
        return history[-1] if history else None

    def point_to(self, version: str | None, rollback: bool = False) -> None:
        """Move the pointer (a deploy pushes the one it replaces on the history; a rollback pops it)."""
        if version is not None:
            self.get(version)
        pointer = self.pointer()
        history = list(pointer.get("history") or [])
        if rollback:
            if not pointer.get("version"):
                raise UserInputError("nothing to roll back: no retriever version is deployed")
            history = history[:-1]
        elif pointer.get("version") and pointer["version"] != version:
            history.append(pointer["version"])
        _write_atomic(self.pointer_path, {"version": version, "history": history, "switched_at": time.time()})

    def restore(self, pointer: dict[str, Any]) -> None:
        """Put back a pointer read earlier (a deploy whose re-embedding failed)."""
        _write_atomic(self.pointer_path, pointer)


def version_embedding(settings: Settings, version: str | None) -> EmbeddingSettings:
    """The embedding settings of a registered version (None: the configured model)."""
    if version is None:
        return settings.embedding
    entry = EmbedderRegistry(Path(settings.data_dir)).get(version)
    if not (Path(entry.model_dir) / "modules.json").is_file():
        raise NotFoundError(f"the model folder of {version} is gone ({entry.model_dir})")
    return settings.embedding.model_copy(update={"model": entry.model_dir})


def effective_embedding(settings: Settings) -> EmbeddingSettings:
    """What new index versions are embedded with: the deployed tuned version when it was tuned from
    the configured model, else the configured model (so changing `embedding.model` still wins)."""
    current = EmbedderRegistry(Path(settings.data_dir)).current()
    if current is None or not same_model(current.base_model, settings.embedding.model):
        return settings.embedding
    return version_embedding(settings, current.version)


def resolve_embedding(settings: Settings, name: str | None) -> EmbeddingSettings:
    """`--embedder` of the CLI: None (what ingestion uses now), `base` (the configured model), a
    registered version, or a sentence-transformers folder."""
    if name is None:
        return effective_embedding(settings)
    if name == "base":
        return settings.embedding
    if name.startswith(VERSION_PREFIX):
        return version_embedding(settings, name)
    if Path(name).expanduser().is_dir():
        return settings.embedding.model_copy(update={"model": str(Path(name).expanduser().resolve())})
    raise UserInputError(f"--embedder takes 'base', a version such as {VERSION_PREFIX}1, or a model folder; not {name!r}")
