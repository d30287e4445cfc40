"""A wrapper around a real engine that counts generation calls (used by tests and the chat bench)."""


class CountingEngine:
    """Wraps a real engine and counts calls (to prove the model was, or was not, asked)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.kind, self.name, self.n_ctx = inner.kind, inner.name, inner.n_ctx

    def count_tokens(self, messages):
        return self.inner.count_tokens(messages)

    async def generate(self, *args, **kwargs):
        self.calls += 1
        return await self.inner.generate(*args, **kwargs)

    def stream(self, *args, **kwargs):
        self.calls += 1
        return self.inner.stream(*args, **kwargs)

    async def ready(self):
        return await self.inner.ready()

    async def aclose(self):
        await self.inner.aclose()
