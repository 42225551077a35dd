"""Events per second through the real broker: Shoal's envelope and bus vs raw aiokafka bytes.

Both paths produce with an idempotent acks=all producer and consume with one consumer in
the same process, end to end (first send to last message consumed). The envelope path adds
the CloudEvents headers, msgspec encoding, decoding with validation and the bus's
per-record bookkeeping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.broker import kafka_bus
from events.bus import EventProducer, ensure_topics
from events.consumer import LiveConsumer, from_beginning
from events.envelope import Envelope
from events.settings import BusSettings
from events.topics import REPLICAS
from events.types import ReplicaReady


def sample(n: int) -> ReplicaReady:
    return ReplicaReady(
        function=f"fn-{n % 50}",
        revision=1,
        replica_id=f"fn-{n % 50}-{n}",
        node=f"node-{n % 20}",
        endpoint=f"http://127.0.0.1:{20000 + n % 10000}",
        concurrency_limit=10,
    )


async def envelope_run(base: BusSettings, count: int) -> float:
    settings = base.named(f"b{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings, [REPLICAS])
    producer = EventProducer(settings, source="/shoal/bench/1")
    await producer.start()
    seen = 0
    done = asyncio.Event()

    async def count_one(_: Envelope) -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            done.set()

    consumer = LiveConsumer(
        settings,
        name="bench",
        topics=[REPLICAS],
        handler=count_one,
        dead_letters=producer,
        start_at=await from_beginning(settings, [REPLICAS]),
        max_batch=5000,
    )
    await consumer.start()
    payloads = [sample(n) for n in range(count)]
    started = time.perf_counter()
    reader = asyncio.create_task(_drain(consumer, done))
    futures = [await producer.send(producer.envelope(p)) for p in payloads]
    await asyncio.gather(*futures)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await reader
    await consumer.stop()
    await producer.stop()
    return count / elapsed


async def _drain(consumer: LiveConsumer, done: asyncio.Event) -> None:
    while not done.is_set():
        await consumer.poll_once(timeout_ms=100)


async def raw_run(base: BusSettings, count: int) -> float:
    settings = base.named(f"b{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings, [REPLICAS])
    topic = REPLICAS.name(settings.namespace)
    producer = AIOKafkaProducer(**settings.producer_kwargs())
    consumer = AIOKafkaConsumer(
        topic, **settings.client_kwargs(), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    payloads = [sample(n) for n in range(count)]
    seen = 0
    started = time.perf_counter()

    async def drain() -> None:
        nonlocal seen
        while seen < count:
            for records in (await consumer.getmany(timeout_ms=100, max_records=5000)).values():
                seen += len(records)

    reader = asyncio.create_task(drain())
    futures = [
        await producer.send(topic, key=p.key.encode(), value=msgspec.json.encode(p))
        for p in payloads
    ]
    await asyncio.gather(*futures)
    await asyncio.wait_for(reader, 300)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await producer.stop()
    return count / elapsed


async def measure(count: int, rounds: int) -> dict[str, float]:
    with kafka_bus() as base:
        await raw_run(base, min(count, 2000))
        raw, env = [], []
        for _ in range(rounds):
            raw.append(await raw_run(base, count))
            env.append(await envelope_run(base, count))
    raw_eps, envelope_eps = statistics.median(raw), statistics.median(env)
    # Rounds alternate raw and envelope; the median of per-round ratios cancels slow drift
    # of the machine (the broker's JIT warming, other load) that medians of each side keep.
    paired = statistics.median(e / r for e, r in zip(env, raw, strict=True))
    print(f"{'path':<10} {'events':>8} {'rounds':>6} {'median ev/s':>12} {'all rounds':>30}")
    print(f"{'raw':<10} {count:>8} {rounds:>6} {raw_eps:>12.0f} {[round(x) for x in raw]!s:>30}")
    print(
        f"{'envelope':<10} {count:>8} {rounds:>6} {envelope_eps:>12.0f} "
        f"{[round(x) for x in env]!s:>30}"
    )
    ratio = paired
    print(
        f"envelope/raw throughput ratio, median of paired rounds: {ratio:.2f} "
        f"(target >= 0.70); ratio of medians {envelope_eps / raw_eps:.2f}"
    )
    return {
        "envelope_eps": round(envelope_eps),
        "raw_eps": round(raw_eps),
        "ratio": round(ratio, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run, under two minutes")
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args()
    count = args.events or (20_000 if args.quick else 100_000)
    rounds = 3 if args.quick else 5
    result = asyncio.run(measure(count, rounds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
