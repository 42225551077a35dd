"""schemathesis with every check against the served OpenAPI document: no server error, no
schema-valid input refused, no invalid one accepted, every answer as documented."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import TOKEN
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.kafka
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(400)
async def test_every_check_passes_on_every_generated_input(
    api: ServiceProcess, tmp_path: Path
) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [
            SCHEMATHESIS,
            "run",
            f"{api.url}/v1/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "30",
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
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        },
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None, report[-3000:]
    generated, passed = map(int, counts.groups())
    assert generated >= 200 and passed == generated, report[-3000:]
