"""Model engines: one small interface (`Engine`), two real implementations (llama.cpp, Ollama)."""

from serve.engines.base import Engine, GenerationResult, create_engine

__all__ = ["Engine", "GenerationResult", "create_engine"]
