"""How to reach the Kafka cluster: one typed object, read from SHOAL_KAFKA_* variables."""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context

from events.credentials import CredentialsError, read_credentials
from events.topics import ROLES


class BadSetting(ValueError):
    """A SHOAL_KAFKA_* variable holds a value that cannot be used; the message names it."""


def _number(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadSetting(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise BadSetting(f"{name}={raw!r} must be a finite number of at least {minimum:g}")
    return value


@dataclass(frozen=True)
class BusSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    namespace: str = "shoal"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    replication_factor: int = 1
    """Replicas of each topic Shoal creates: 1 on the local broker, 3 on a production cluster."""
    linger_ms: int = 2
    """How long the producer waits to fill a batch; small, because demand is latency-bound."""
    max_batch_bytes: int = 262_144
    """Producer batch size per partition. aiokafka's 16 KiB default holds only ~40 events of
    ~370 bytes, and the extra batches cost a 2-core machine about a third of its throughput
    (bench/bus.py)."""
    connect_timeout_s: float = 60.0
    """How long start-up and publishing keep retrying while the broker is unreachable."""
    credentials_file: str | None = None
    """Where the username and password came from (SHOAL_KAFKA_CREDENTIALS_FILE); passed on
    to the processes that connect as the same principal."""

    def signed_in(self, path: Path | str) -> BusSettings:
        """These settings, connecting with SASL/SCRAM-SHA-256 as the principal whose
        credentials file `path` is (unless another protocol and mechanism are set)."""
        try:
            found = read_credentials(Path(path))
        except CredentialsError as exc:
            raise BadSetting(f"SHOAL_KAFKA_CREDENTIALS_FILE: {exc}") from None
        protocol = self.security_protocol
        return replace(
            self,
            security_protocol="SASL_PLAINTEXT" if protocol == "PLAINTEXT" else protocol,
            sasl_mechanism=self.sasl_mechanism or "SCRAM-SHA-256",
            sasl_username=found.username,
            sasl_password=found.password,
            credentials_file=str(path),
        )

    @property
    def role(self) -> str | None:
        """The service role this principal is (None for an operator's or a shared one). A
        role's principal may not make topics: the operator's makes them."""
        return self.sasl_username if self.sasl_username in ROLES else None

    def named(self, namespace: str) -> BusSettings:
        return replace(self, namespace=namespace)

    def env(self) -> dict[str, str]:
        """The variables that give another process the same bus (credentials by file)."""
        found = {
            "SHOAL_KAFKA_BOOTSTRAP": self.bootstrap_servers,
            "SHOAL_KAFKA_NAMESPACE": self.namespace,
        }
        if self.credentials_file:
            found["SHOAL_KAFKA_CREDENTIALS_FILE"] = self.credentials_file
        return found

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BusSettings:
        found = cls._from_env(environ)
        path = environ.get("SHOAL_KAFKA_CREDENTIALS_FILE")
        return found.signed_in(path) if path else found

    @classmethod
    def _from_env(cls, environ: Mapping[str, str]) -> BusSettings:
        def opt(name: str) -> str | None:
            return environ.get(name) or None

        return cls(
            bootstrap_servers=environ.get("SHOAL_KAFKA_BOOTSTRAP", cls.bootstrap_servers),
            namespace=environ.get("SHOAL_KAFKA_NAMESPACE", cls.namespace),
            security_protocol=environ.get("SHOAL_KAFKA_SECURITY_PROTOCOL", cls.security_protocol),
            sasl_mechanism=opt("SHOAL_KAFKA_SASL_MECHANISM"),
            sasl_username=opt("SHOAL_KAFKA_SASL_USERNAME"),
            sasl_password=opt("SHOAL_KAFKA_SASL_PASSWORD"),
            ssl_cafile=opt("SHOAL_KAFKA_SSL_CAFILE"),
            ssl_certfile=opt("SHOAL_KAFKA_SSL_CERTFILE"),
            ssl_keyfile=opt("SHOAL_KAFKA_SSL_KEYFILE"),
            replication_factor=int(
                _number(environ, "SHOAL_KAFKA_REPLICATION_FACTOR", cls.replication_factor, 1)
            ),
            linger_ms=int(_number(environ, "SHOAL_KAFKA_LINGER_MS", cls.linger_ms, 0)),
            max_batch_bytes=int(
                _number(environ, "SHOAL_KAFKA_MAX_BATCH_BYTES", cls.max_batch_bytes, 1024)
            ),
            connect_timeout_s=_number(
                environ, "SHOAL_KAFKA_CONNECT_TIMEOUT_S", cls.connect_timeout_s, 0.1
            ),
        )

    def producer_kwargs(self) -> dict[str, Any]:
        """Options of every Shoal producer: idempotent, acknowledged by all in-sync replicas."""
        return {
            **self.client_kwargs(),
            "enable_idempotence": True,
            "acks": "all",
            "linger_ms": self.linger_ms,
            "max_batch_size": self.max_batch_bytes,
            "request_timeout_ms": int(self.connect_timeout_s * 1000),
        }

    def client_kwargs(self) -> dict[str, Any]:
        """Connection options shared by aiokafka producers, consumers and admin clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            context: ssl.SSLContext = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
            kwargs["ssl_context"] = context
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs
