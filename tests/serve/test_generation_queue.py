"""Turns at the one-request-at-a-time model: bounded queue, bounded wait, no worker thread parked."""

from __future__ import annotations

import asyncio

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
