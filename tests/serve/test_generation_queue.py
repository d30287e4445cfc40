"""Turns at the one-request-at-a-time model: bounded queue, bounded wait, no worker thread parked."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from serve.engines.queue import GenerationQueue, ModelBusy


def test_turns_are_served_in_order_and_a_full_queue_refuses_at_once():
    async def scenario():
        queue = GenerationQueue(limit=2, timeout_s=5)
        order: list[str] = []
        release = asyncio.Event()

        async def answer(name: str, hold: bool = False):
            async with queue.turn():
                order.append(name)
                if hold:
                    await release.wait()

        first = asyncio.create_task(answer("first", hold=True))
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(answer(n)) for n in ("second", "third")]
        await asyncio.sleep(0)
        assert queue.waiting == 2
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(ModelBusy, match="llm.queue_limit") as refused:
            await answer("fourth")
        assert loop.time() - t0 < 0.1  # refused without waiting
        assert int(refused.value.headers["Retry-After"]) >= 1
        release.set()
        await asyncio.gather(first, *waiting)
        assert order == ["first", "second", "third"]
        assert queue.waiting == 0

    asyncio.run(scenario())


def test_a_wait_longer_than_the_timeout_is_refused_and_the_turn_is_not_lost():
    async def scenario():
        queue = GenerationQueue(limit=5, timeout_s=0.2)
        release = asyncio.Event()

        async def hold():
            async with queue.turn():
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        with pytest.raises(ModelBusy, match="llm.queue_timeout_s"):
            async with queue.turn():
                pass
        release.set()
        await holder
        async with asyncio.timeout(1):  # the timed-out waiter left no turn taken behind
            async with queue.turn():
                pass

    asyncio.run(scenario())


def _held_engine(settings, monkeypatch):
    """The real llama.cpp engine (tiny GGUF) whose first generation waits for `gate` once it holds its turn."""
    from serve.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(settings, settings.llm.gguf_path)
    gate = threading.Event()
    real = engine._generate_sync

    def held(*args):
        gate.wait(30)
        return real(*args)

    monkeypatch.setattr(engine, "_generate_sync", held)
    return engine, gate


@pytest.mark.parametrize("answer_mode", ["generative", "auto"])
@pytest.mark.slow
def test_a_full_queue_is_a_503_or_in_auto_mode_the_extractive_answer(serve_settings, make_client, monkeypatch, answer_mode):
    settings = serve_settings.model_copy(
        update={
            "llm": serve_settings.llm.model_copy(update={"queue_limit": 0}),
            "chat": serve_settings.chat.model_copy(update={"answer_mode": answer_mode, "min_model_pass_rate": 0.0}),
        }
    )
    engine, gate = _held_engine(settings, monkeypatch)
    client = make_client(settings, engine=engine)
    question = {"message": "How long do I have to ask for a refund on an annual plan?"}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, "/v1/chat", json=question)
        deadline = time.monotonic() + 30
        while not (engine.queue._slot and engine.queue._slot[1].locked()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert engine.queue._slot and engine.queue._slot[1].locked(), "the first answer never took its turn"
        second = client.post("/v1/chat", json=question)  # no waiting allowed: refused at once
        gate.set()
        assert first.result(timeout=60).status_code == 200
    if answer_mode == "generative":
        assert second.status_code == 503 and int(second.headers["Retry-After"]) >= 1
        assert "llm.queue_limit" in second.json()["detail"]
    else:
        body = second.json()
        assert second.status_code == 200 and body["mode"] == "extractive"
        assert body["verification"]["reasons"] == ["unavailable"] and body["verification"]["fallback"] is True
        assert body["citations"], "the extractive answer cites its evidence"
