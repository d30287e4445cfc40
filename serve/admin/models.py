"""Answer-model versions over the model registry (ragtune/registry.py): list them, deploy one.

Deploying moves the registry's pointer; a server whose engine follows the registry
(serve/model_switch.py, the default embedded engine) answers with the new version from its next
answer, without a restart. The deploy is gated like `ragtune train deploy`, but on the figures the
training evaluation already stored (the API does not run a model evaluation): a candidate scoring
below the serving version on the same held-out questions is refused, and one that cannot be
compared is refused too; `force` deploys anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune.errors import Conflict
from ragtune.registry import ModelRegistry, ModelVersion
from ragtune.settings import Settings
from serve.engines import Engine
from serve.model_switch import SwitchingEngine


class ModelAdmin:
    def __init__(self, settings: Settings, engine: Engine | None):
        self.registry = ModelRegistry(Path(settings.data_dir))
        self.engine = engine

    @property
    def follows_registry(self) -> bool:
        return isinstance(self.engine, SwitchingEngine)

    def list(self) -> dict[str, Any]:
        pointer = self.registry.pointer() or {}
        current = pointer.get("version")
        return {
            "current": current,
            "history": pointer.get("history", []),
            "serving": self.engine.name if self.engine is not None else None,
            "engine": self.engine.kind if self.engine is not None else None,
            "follows_registry": self.follows_registry,
            "versions": [
                {
                    "version": v.version,
                    "base_model": v.base_model,
                    "created_at": v.created_at,
                    "gguf": v.gguf,
                    "available": Path(v.gguf).is_file(),
                    "dataset_hash": v.dataset_hash,
                    "quality_score": _gate(v).get("quality_score"),
                    "current": v.version == current,
                }
                for v in sorted(self.registry.versions(), key=lambda v: v.created_at, reverse=True)
            ],
        }

    def deploy(self, name: str, force: bool = False) -> dict[str, Any]:
        candidate = self.registry.get(name)  # NotFoundError (404) names the known versions
        current = self.registry.current()
        if not force and (current is None or current.version != name):
            self._gate(candidate, current)
        self.registry.deploy(name)
        if self.follows_registry:
            applies = f"the chat API answers with {name} from its next answer (no restart)"
        else:
            applies = (
                "the registry now points at it, but this server does not follow the registry "
                "(llm.gguf_path, llm.hf_repo, Ollama or no engine is configured); unset those and restart to serve it"
            )
        return {"deployed": name, "previous": current.version if current else None, "forced": force, "detail": applies}

    def _gate(self, candidate: ModelVersion, current: ModelVersion | None) -> None:
        new, old = _gate(candidate), (_gate(current) if current else {})
        serving = current.version if current else "the configured default model"
        fix = f"run `ragtune train deploy {candidate.version}` (it evaluates both models first), or deploy with force=true"
        if new.get("quality_score") is None:
            raise Conflict(f"{candidate.version} has no stored answer-quality figures to gate on; {fix}")
        if old.get("quality_score") is None or old.get("questions_key") != new.get("questions_key"):
            raise Conflict(f"no stored answer-quality figures of {serving} on the same questions to compare with; {fix}")
        if new["quality_score"] < old["quality_score"]:
            raise Conflict(
                f"{candidate.version} scores {new['quality_score']} against {old['quality_score']} for {serving}; "
                "not deployed (deploy with force=true to override)"
            )


def _gate(version: ModelVersion) -> dict[str, Any]:
    gate = version.eval.get("gate")
    return gate if isinstance(gate, dict) else {}
