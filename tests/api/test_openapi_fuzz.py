"""schemathesis against the served OpenAPI document: no input gets a 5xx."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import TOKEN
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.kafka
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@pytest.mark.timeout(400)
async def test_no_generated_input_gets_a_server_error(api: ServiceProcess, tmp_path: Path) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [
            SCHEMATHESIS,
            "run",
            f"{api.url}/v1/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "--request-timeout",
            "10",
            "--suppress-health-check",
            "all",
            "--seed",
            "20261124",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=380,
        cwd=tmp_path,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None, report[-3000:]
    generated, passed = map(int, counts.groups())
    assert generated >= 200 and passed == generated, report[-3000:]
