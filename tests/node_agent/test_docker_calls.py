"""Docker calls in lanes: the timeout is the engine's time to answer one call, not the
time a call waits behind others of its kind; a call that overruns says which it was."""

from __future__ import annotations

import asyncio
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
