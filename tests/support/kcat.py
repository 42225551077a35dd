"""Looking at the broker from outside Shoal: kcat (librdkafka) with a principal's credentials
file or with none, and the topics as an admin client sees them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from events.credentials import read_credentials
from events.settings import BusSettings


def kcat_list(
    bootstrap: str, credentials: Path | None, config_dir: Path
) -> subprocess.CompletedProcess[str]:
    """`kcat -L` (the cluster's metadata); its config, password included, in a 0600 file."""
    args = ["kcat", "-b", bootstrap, "-L", "-m", "5"]
    if credentials is not None:
        found = read_credentials(credentials)
        config = config_dir / "kcat.conf"
        config.unlink(missing_ok=True)
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-256\n"
                f"sasl.username={found.username}\nsasl.password={found.password}\n"
            )
        args += ["-F", str(config)]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


async def partition_counts(bus: BusSettings) -> dict[str, int]:
    """Partitions of every topic, as our own client sees them signed in as `bus` says."""
    admin = AIOKafkaAdminClient(**bus.client_kwargs())
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
    finally:
        await admin.close()
