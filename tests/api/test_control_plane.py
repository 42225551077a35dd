"""The control plane: validation, auth, the function lifecycle, nodes."""

from __future__ import annotations

import aiohttp
import pytest

from events.types import FunctionDeployed, FunctionRolledBack, FunctionUpdated, ScaleRequested
from tests.api.conftest import AUTH, deploy
from tests.support.event_log import EventLog
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.kafka


async def test_every_wrong_field_is_named_in_one_422(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    body = {
        "name": "Bad_Name",
        "image": "",
        "port": 0,
        "cpu": "lots",
        "surprise": 1,
        "env": {"1X": "a"},
        "readiness_path": "health",
        "scaling_metric": "vibes",
    }
    async with http.post(f"{api.url}/v1/functions", json=body, headers=AUTH) as reply:
        assert reply.status == 422
        result = await reply.json()
    assert result["error"] == "invalid input"
    assert {f["field"] for f in result["fields"]} == {
        "name",
        "image",
        "port",
        "cpu",
        "surprise",
        "env.1X",
        "readiness_path",
        "scaling_metric",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": "i"}, "name"),
        ({"name": "ok"}, "image"),
        ({"name": "ok", "image": "i", "min_replicas": 5, "max_replicas": 2}, "min_replicas"),
        ({"name": "ok", "image": "i", "initial_scale": 9, "max_replicas": 2}, "initial_scale"),
        ({"name": "ok", "image": "i", "target_utilization": 1.5}, "target_utilization"),
        ({"name": "ok", "image": "i", "memory_mb": -1}, "memory_mb"),
        ({"name": "x" * 70, "image": "i"}, "name"),
    ],
)
async def test_each_invalid_spec_is_refused_naming_the_field(
    api: ServiceProcess, http: aiohttp.ClientSession, body: dict[str, object], field: str
) -> None:
    async with http.post(f"{api.url}/v1/functions", json=body, headers=AUTH) as reply:
        assert reply.status == 422
        assert field in {f["field"] for f in (await reply.json())["fields"]}


async def test_whole_numbers_written_as_decimals_are_integers_as_json_schema_says(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    body = {"name": "decimals", "image": "i:1", "port": 8080.0, "canary_steps": [10.0, 50]}
    async with http.post(f"{api.url}/v1/functions", json=body, headers=AUTH) as reply:
        assert reply.status == 201, await reply.text()
        spec = (await reply.json())["spec"]
    assert (spec["port"], spec["canary_steps"]) == (8080, [10, 50])
    fraction = {**body, "name": "fraction", "port": 8080.5}
    async with http.post(f"{api.url}/v1/functions", json=fraction, headers=AUTH) as reply:
        assert reply.status == 422
        assert [f["field"] for f in (await reply.json())["fields"]] == ["port"]


async def test_bad_bodies_get_400_and_413(api: ServiceProcess, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{api.url}/v1/functions", data=b"{nope", headers=AUTH) as reply:
        assert reply.status == 400
        assert "not JSON" in (await reply.json())["error"]
    async with http.post(f"{api.url}/v1/functions", data=b"[]", headers=AUTH) as reply:
        assert reply.status == 422
    big = {"name": "big", "image": "i", "env": {"A": "x" * 70_000}}
    async with http.post(f"{api.url}/v1/functions", json=big, headers=AUTH) as reply:
        assert reply.status == 413
        assert "65536" in (await reply.json())["error"]


async def test_the_control_plane_needs_the_token_and_says_so(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-xx"}, {"Authorization": "Basic x"}):
        async with http.get(f"{api.url}/v1/functions", headers=headers) as reply:
            assert reply.status == 401
            assert "Authorization: Bearer" in (await reply.json())["error"]
    async with http.get(f"{api.url}/v1/openapi.json") as reply:
        assert reply.status == 200
        assert (await reply.json())["openapi"].startswith("3.")


async def test_unknown_paths_methods_and_names_answer_json(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{api.url}/v1/functions/ghost", headers=AUTH) as reply:
        assert reply.status == 404
        assert "ghost" in (await reply.json())["error"]
    async with http.get(f"{api.url}/v1/nope", headers=AUTH) as reply:
        assert reply.status == 404
        assert (await reply.json())["error"] == "Not Found"
    async with http.put(f"{api.url}/v1/functions", headers=AUTH) as reply:
        assert reply.status == 405
        assert (await reply.json())["error"] == "Method Not Allowed"
    async with http.put(
        f"{api.url}/v1/functions/ghost", json={"image": "i"}, headers=AUTH
    ) as reply:
        assert reply.status == 404


async def test_a_function_is_created_replaced_patched_scaled_rolled_back_and_deleted(
    api: ServiceProcess, http: aiohttp.ClientSession, events: EventLog
) -> None:
    created = await deploy(http, api, "hello", max_replicas=5)
    assert (created["revision"], created["spec"]["port"], created["ready"]) == (1, 8080, 0)
    (deployed,) = await events.wait_for(FunctionDeployed)
    assert deployed.spec.max_replicas == 5
    async with http.post(
        f"{api.url}/v1/functions", json={"name": "hello", "image": "i"}, headers=AUTH
    ) as reply:
        assert reply.status == 409
    url = f"{api.url}/v1/functions/hello"
    async with http.put(
        url, json={"image": "shoal-test/hello:2", "max_replicas": 5}, headers=AUTH
    ) as reply:
        assert reply.status == 200
        assert (await reply.json())["revision"] == 2
    async with http.put(url, json={"name": "other", "image": "i"}, headers=AUTH) as reply:
        assert reply.status == 422
    async with http.patch(url, json={"max_replicas": 9, "target": 20}, headers=AUTH) as reply:
        assert reply.status == 200
        patched = await reply.json()
    assert (patched["revision"], patched["spec"]["max_replicas"]) == (2, 9)
    async with http.patch(url, json={"image": "x"}, headers=AUTH) as reply:
        assert reply.status == 422
        assert "PUT" in (await reply.json())["fields"][0]["message"]
    updates = await events.wait_for(FunctionUpdated, count=2)
    assert [u.revision for u in updates] == [2, 2]
    async with http.post(f"{url}/scale", json={"replicas": 12}, headers=AUTH) as reply:
        assert reply.status == 409, "above the function's max_replicas: a conflict"
        assert (await reply.json())["fields"][0]["field"] == "replicas"
    async with http.post(f"{url}/scale", json={"replicas": 3}, headers=AUTH) as reply:
        assert reply.status == 202
    assert (await events.wait_for(ScaleRequested))[0].replicas == 3
    async with http.post(f"{url}/rollback", json={"revision": 7}, headers=AUTH) as reply:
        assert reply.status == 404
    async with http.post(f"{url}/rollback", json={"revision": 2}, headers=AUTH) as reply:
        assert reply.status == 409
    async with http.post(f"{url}/rollback", json={"revision": 1}, headers=AUTH) as reply:
        assert reply.status == 200
        assert (await reply.json())["revision"] == 1
    (rolled,) = await events.wait_for(FunctionRolledBack)
    assert (rolled.from_revision, rolled.to_revision) == (2, 1)
    async with http.get(f"{api.url}/v1/functions", headers=AUTH) as reply:
        assert [f["name"] for f in (await reply.json())["functions"]] == ["hello"]
    async with http.delete(url, headers=AUTH) as reply:
        assert reply.status == 202
    async with http.get(url, headers=AUTH) as reply:
        assert reply.status == 404
    await deploy(http, api, "hello")


async def test_node_actions_for_unknown_nodes_are_404(
    api: ServiceProcess, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{api.url}/v1/nodes/ghost/cordon", headers=AUTH) as reply:
        assert reply.status == 404
    async with http.get(f"{api.url}/v1/nodes", headers=AUTH) as reply:
        assert (await reply.json()) == {"nodes": []}
