"""`ragtune train retriever distill --config C`: train a shallower student of the embedder and register
it as the next retriever-vN (the same registry, eval, deploy and rollback as a tuned model).

Wiring only: the training is `train/distill.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ragtune.errors import UserInputError
from ragtune.settings import Settings


def distill(args, settings: Settings) -> int:
    from cli.train_retriever import _registry
    from ragtune.embedders import VERSION_PREFIX
    from train.distill import load_distill_config, train_student

    if args.distill_config is None:
        raise UserInputError("give the distillation config: `ragtune train retriever distill --config FILE`")
    config = load_distill_config(args.distill_config)
    if args.max_minutes is not None:
        config = config.model_copy(update={"max_minutes": args.max_minutes})
    root_teacher = config.teacher
    if config.teacher.startswith(VERSION_PREFIX):  # distilling a tuned version
        entry = _registry(settings).get(config.teacher)
        config, root_teacher = config.model_copy(update={"teacher": entry.model_dir}), entry.base_model
    try:
        info = train_student(config, settings.retrieval)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise UserInputError(str(exc)) from exc
    info = register_student(settings, config, info, root_teacher)
    print(json.dumps({k: info[k] for k in ("version", "layers", "wall_s", "peak_rss_mb", "steps", "selected_step")}, indent=1))
    print(f"dev (student vs teacher): {info['dev_selected']}")
    print(f"registered {info['version']}; next: ragtune train retriever eval {info['version']}")
    return 0


def register_student(settings: Settings, config: Any, info: dict[str, Any], root_teacher: str) -> dict[str, Any]:
    """Register a finished run's model as the next retriever-vN, its ONNX export checked against torch."""
    from cli.train_retriever import _onnx_cache, _registry
    from train.distill import distill_texts
    from train.retriever import onnx_parity

    registry = _registry(settings)
    entry = registry.register(
        config.run_dir / "model",
        root_teacher,
        None,
        json.loads(config.model_dump_json()),
        {"distilled_from": config.teacher, "layers": config.layers, "dev_selected": info["dev_selected"]},
        config.run_dir,
    )
    texts, _ = distill_texts(config.data.model_copy(update={"beir": []}))
    parity = onnx_parity(Path(entry.model_dir), _onnx_cache(settings.embedding), texts[:32])
    if parity["min_cosine"] < 0.9999:
        raise UserInputError(f"the ONNX export of {entry.version} disagrees with torch (min cosine {parity['min_cosine']})")
    registry.update_eval(entry.version, {"onnx_parity": parity})
    info |= {"version": entry.version, "model_dir": entry.model_dir, "onnx_parity": parity}
    (config.run_dir / "run.json").write_text(json.dumps(info, indent=1))
    return info
