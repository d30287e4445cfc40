"""The unsloth QLoRA path: needs a CUDA GPU and the `gpu` extra; skipped otherwise."""

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_unsloth_run_trains_a_lora_on_gpu(prepared, tmp_path):
    pytest.importorskip("unsloth")
    from train.run import run

    config, _ = prepared
    config = config.model_copy(
        update={"name": "gpu", "runs_dir": tmp_path, "backend": "unsloth", "load_in_4bit": True, "max_steps": 2}
    )
    info = run(config, log=lambda *_: None)
    assert info["backend"] == "unsloth" and info["steps"] == 2
    assert (config.run_dir / "adapter" / "adapter_model.safetensors").is_file()
