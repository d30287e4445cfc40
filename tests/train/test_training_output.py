"""`ragtune train ...` output: the libraries' deprecation notices and per-pass bars are filtered at the
CLI, real warnings and errors still reach the terminal."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from ..conftest import ROOT

PROBE = textwrap.dedent(
    """
    import warnings
    from cli.training_output import quiet_training_output

    quiet_training_output()
    warnings.warn_explicit(
        "`gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning,
        "training_args.py", 1541, module="transformers.training_args",
    )
    warnings.warn_explicit(
        "`use_cache=True` is incompatible with gradient checkpointing. Setting `use_cache=False`.", UserWarning,
        "modeling_utils.py", 10, module="transformers.modeling_utils",
    )
    warnings.warn_explicit("OWN-WARNING the dataset has 3 records", UserWarning, "run.py", 1, module="train.run")
    from transformers.utils import logging

    logging.get_logger("transformers.trainer").warning("LIBRARY-WARNING advice nobody asked for")
    logging.get_logger("transformers.trainer").error("LIBRARY-ERROR the checkpoint is corrupt")
    import datasets

    datasets.Dataset.from_list([{"a": i} for i in range(50)]).map(lambda r: r, desc="Tokenizing train dataset")
    print("done")
    """
)


def test_library_noise_is_filtered_and_real_warnings_and_errors_stay(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    err = done.stderr
    assert "deprecated" not in err and "use_cache" not in err and "Tokenizing train dataset" not in err
    assert "LIBRARY-WARNING" not in err
    assert "OWN-WARNING the dataset has 3 records" in err  # a warning not known as noise is shown
    assert "LIBRARY-ERROR the checkpoint is corrupt" in err  # errors are kept


def test_an_operator_setting_wins(tmp_path):
    code = "import os\nfrom cli.training_output import quiet_training_output\nquiet_training_output()\nprint(os.environ['TRANSFORMERS_VERBOSITY'])"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TRANSFORMERS_VERBOSITY": "info"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.stdout.strip() == "info"


@pytest.mark.slow  # trains one LoRA step on the tiny model through the real CLI
def test_a_training_run_prints_no_library_warnings(prepared, tmp_path):
    config, _ = prepared
    config = config.model_copy(update={"name": "quiet", "runs_dir": tmp_path / "runs", "max_steps": 1, "eval_steps": 1})
    path = tmp_path / "quiet.yaml"
    path.write_text(json.dumps(config.model_dump(mode="json")))
    env = {
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "HOME": str(tmp_path),
        "RAGTUNE_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli", "train", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout[done.stdout.index("{\n") :])["steps"] == 1
    noise = [line for line in done.stderr.splitlines() if "Warning" in line or "warnings.warn" in line or "dataset:" in line]
    assert noise == [], noise
    assert (tmp_path / "runs" / "quiet" / "adapter" / "adapter_model.safetensors").is_file()
