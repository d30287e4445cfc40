"""Model engines: one small interface (`Engine`), three real implementations (llama.cpp, Ollama, an OpenAI-compatible server)."""

from serve.engines.base import Engine, GenerationResult, create_engine

__all__ = ["Engine", "GenerationResult", "create_engine"]
