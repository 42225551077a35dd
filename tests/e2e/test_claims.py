"""A new leader claims every node before its first command (`services.common.claims`):
on real Kafka and Docker, the start command its deposed predecessor sends to a node the
successor has never commanded (it only claimed it) is refused by that node, counted, and
starts nothing; the log's invariants hold."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.bus import EventProducer
from events.settings import BusSettings
from events.topics import NODE_COMMANDS
from events.types import CommandsClaimed, FunctionSpec, StartReplica
from services.common.labels import LABEL_REPLICA
from services.local.images import ensure_test_images
from services.local.kafka_broker import LocalKafkaBroker
from tests.support.event_log import EventLog
from tests.support.invariants import assert_log_holds
from tests.support.leaders import epoch_of, leader_of
from tests.support.platform import running_platform
from tests.support.service_process import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.docker]
FENCED = re.compile(r'^shoal_node_commands_fenced_total\{role="scheduler"\} (\d+)\.0$', re.M)


async def fenced(agent: ServiceProcess) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{agent.url}/metrics") as reply:
        found = FENCED.findall(await reply.text())
    return int(found[0]) if found else 0


async def test_a_deposed_schedulers_start_on_a_node_its_successor_only_claimed_is_refused(
    bus: BusSettings, kafka_broker: LocalKafkaBroker, tmp_path: Path, docker_client: Any
) -> None:
    ensure_test_images(docker_client)
    async with running_platform(bus, tmp_path, docker_client) as cluster:
        second = cluster.scheduler.successor("scheduler-2")
        await second.start()
        try:
            first = await leader_of("scheduler", cluster.scheduler, second)
            standby = second if first is cluster.scheduler else cluster.scheduler
            deposed, old_epoch = await epoch_of(first, "scheduler")
            await first.kill()
            assert await leader_of("scheduler", standby, timeout_s=10) is standby
            _, new_epoch = await epoch_of(standby, "scheduler")
            assert new_epoch > old_epoch
            node = cluster.agents[0]
            async with EventLog(bus, [NODE_COMMANDS]) as log:
                claims = await log.wait_for(
                    CommandsClaimed, lambda c: c.node == node.node_id and c.epoch == new_epoch
                )
                assert not log.of(StartReplica), "the node was never commanded"
            assert claims[0].epoch == new_epoch
            as_scheduler = bus.signed_in(kafka_broker.credentials("scheduler"))
            producer = EventProducer(as_scheduler, source=f"/shoal/scheduler/{deposed}")
            await producer.start()
            try:
                spec = FunctionSpec(name="ghost", image="shoal-test/hello:1")
                start = StartReplica(
                    node=node.node_id,
                    function="ghost",
                    revision=1,
                    replica_id="ghost-1-deposed",
                    spec=spec,
                    epoch=old_epoch,
                )
                await producer.publish(start)
            finally:
                await producer.stop()
            for _ in range(100):
                if await fenced(node) == 1:
                    break
                await asyncio.sleep(0.1)
            assert await fenced(node) == 1, "the deposed leader's command was not refused"
            await asyncio.sleep(1)
            label = {"label": f"{LABEL_REPLICA}=ghost-1-deposed"}
            assert not docker_client.containers.list(all=True, filters=label)
            report = await assert_log_holds(bus, grace_s=0)
            assert report.checked["deposed not obeyed"] >= 2
        finally:
            await second.stop()
