"""Docker calls in lanes: the timeout is the engine's time to answer one call, not the
time a call waits behind others of its kind; a call that overruns says which it was."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from services.node_agent.docker_calls import LANES, DockerCalls


def slow_sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def test_calls_queued_behind_their_lane_do_not_time_out() -> None:
    calls = DockerCalls(timeout_s=0.5)
    try:
        many = 5 * LANES["stats"]  # five rounds of 0.2 s: 1 s in all, twice the timeout
        done = await asyncio.gather(*(calls(slow_sleep, 0.2, kind="stats") for _ in range(many)))
        assert done == [0.2] * many
        assert calls.available
    finally:
        calls.close()


async def test_a_call_the_engine_does_not_answer_in_time_is_named() -> None:
    calls = DockerCalls(timeout_s=0.2)
    try:
        with pytest.raises(TimeoutError, match=r"did not answer slow_sleep within 0\.2 s"):
            await calls(slow_sleep, 1.0, kind="read")
    finally:
        calls.close()


async def test_a_call_cancelled_as_its_answer_arrives_is_cancelled() -> None:
    """asyncio.wait_for on Python 3.11 returns an answer that arrives with the cancellation,
    so a caller's bounded poll went on for ever; a cancelled call must end cancelled."""
    calls = DockerCalls(timeout_s=5)
    answered = threading.Event()

    def answer() -> str:
        answered.set()
        return "answer"

    swallowed = 0
    try:
        for turn in range(300):
            answered.clear()
            task = asyncio.create_task(calls(answer))
            await asyncio.to_thread(answered.wait, 5)
            for _ in range(turn % 4):
                await asyncio.sleep(0)
            if task.cancel():
                ended = await asyncio.gather(task, return_exceptions=True)
                swallowed += not isinstance(ended[0], asyncio.CancelledError)
    finally:
        calls.close()
    assert swallowed == 0, f"{swallowed} cancellations swallowed"
