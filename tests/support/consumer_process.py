"""A consumer in its own process, for tests that SIGKILL it: it appends each delivered
event id to a file, and may kill itself with SIGKILL in the middle of a batch."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import TextIO

from events.bus import EventProducer
from events.consumer import LiveConsumer
from events.envelope import Envelope
from events.settings import BusSettings
from events.topics import REPLICAS


async def consume(args: argparse.Namespace, out: TextIO) -> None:
    settings = BusSettings.from_env(
        {
            **os.environ,
            "SHOAL_KAFKA_BOOTSTRAP": args.bootstrap,
            "SHOAL_KAFKA_NAMESPACE": args.namespace,
        }
    )
    producer = EventProducer(settings, source="/shoal/test/consumer-process")
    await producer.start()
    stop = asyncio.Event()
    handled = 0
    distinct: set[str] = set()

    async def record(envelope: Envelope) -> None:
        nonlocal handled
        out.write(envelope.id + "\n")
        handled += 1
        distinct.add(envelope.id)
        if args.kill_after and handled >= args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if args.expect and len(distinct) >= args.expect:
            stop.set()

    consumer = LiveConsumer(
        settings,
        name="proc",
        topics=[REPLICAS],
        handler=record,
        dead_letters=producer,
        group_id=args.group,
    )
    await consumer.run(stop)
    await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--kill-after", type=int, default=0)
    parser.add_argument("--expect", type=int, default=0)
    args = parser.parse_args()
    with open(args.out, "a", buffering=1) as out:
        asyncio.run(consume(args, out))


if __name__ == "__main__":
    main()
