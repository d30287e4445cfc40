"""ragtune's shared core: settings, errors, the knowledge index, retrieval and the answer contract.

`ingest`, `serve` and `train` import this package and never each other.
"""

__version__ = "0.1.0"
