"""The function spec, declared once with its bounds.

Every field carries its constraints (ranges, lengths, patterns; every number is bounded,
so none is infinite or NaN) and a description. The api's validation, the OpenAPI
document, the CLI's flags and every consumer of an event that holds a spec derive from
this one declaration: a field added here appears everywhere.

Field metadata (`msgspec.Meta.extra`):
- `scaling`: a scaling setting, changeable with PATCH without a new revision;
- `flag`: the CLI flag, when it is not `--` plus the field name with dashes; `short`, a
  one-letter alias.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

END = r"(?!\n)$"
r"""The end of a pattern: `$` alone also matches before a last newline (in Python's `re`,
which checks every pattern), and `\Z` is not JSON Schema's (ECMA-262) regex."""
DNS_LABEL = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?" + END
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}" + END
IMAGE_REFERENCE = (
    r"^([a-zA-Z0-9][-a-zA-Z0-9.]*[a-zA-Z0-9](:[0-9]{1,5})?/|[a-zA-Z0-9](:[0-9]{1,5})?/)?"
    r"[a-z0-9]+([._-]{1,2}[a-z0-9]+)*(/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?" + END
)
"""A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest]."""
SECRET_KEY = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,252}" + END
"""A secret's key, the name of its file: no '/', and not '.' or '..' (no leading dot)."""
READINESS_PATH = r"^(/[!-~]*)?" + END
"""Empty (a TCP probe) or an absolute path of printable ASCII."""

MAX_REPLICAS_LIMIT = 1000
MAX_SECRETS = 8
SECRETS_PATH = "/var/shoal/secrets"
"""Where a replica finds its secrets: SECRETS_PATH/NAME/KEY, one file per key."""
DEFAULT_CPU_REQUEST = 0.05
"""What a replica reserves on its node unless its spec says: most replicas idle most of
the time (Knative requests none; Kubernetes separates requests from limits)."""
MAX_BODY_LIMIT = 64 << 20
"""The platform's cap on a function's request body (the api reads a body whole)."""
ScalingMetric = Literal["concurrency", "rps", "cpu"]
RolloutStrategy = Literal["immediate", "canary"]
CanaryStep = Annotated[int, msgspec.Meta(ge=1, le=99)]


def _meta(
    description: str,
    *,
    flag: str | None = None,
    short: str | None = None,
    scaling: bool = False,
    **bounds: Any,
) -> Any:
    extra: dict[str, Any] = {}
    if scaling:
        extra["scaling"] = True
    if flag:
        extra["flag"] = flag
    if short:
        extra["short"] = short
    return msgspec.Meta(description=description, extra=extra or None, **bounds)


EnvName = Annotated[str, msgspec.Meta(pattern=ENV_NAME)]
EnvValue = Annotated[str, msgspec.Meta(max_length=4096)]
Word = Annotated[str, msgspec.Meta(max_length=1024)]


class FunctionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a user asked to run; defaults follow Knative Serving where it has one."""

    name: Annotated[
        str,
        _meta(
            "A DNS label: lowercase letters, digits and '-', starting with a letter",
            min_length=1,
            max_length=63,
            pattern=DNS_LABEL,
        ),
    ]
    image: Annotated[
        str,
        _meta(
            "The container image: [registry/]path[:tag][@sha256:digest]",
            min_length=1,
            max_length=512,
            pattern=IMAGE_REFERENCE,
        ),
    ]
    port: Annotated[int, _meta("The port the function listens on ($PORT)", ge=1, le=65535)] = 8080
    env: Annotated[
        dict[EnvName, EnvValue],
        _meta("Environment variables, KEY=VALUE", flag="--env", short="-e", max_length=64),
    ] = {}
    command: Annotated[
        list[Word], _meta("The entrypoint (default: the image's)", max_length=64)
    ] = []
    args: Annotated[
        list[Word], _meta("Arguments of the entrypoint", flag="--arg", max_length=64)
    ] = []
    cpu: Annotated[
        float, _meta("CPUs per replica, at most (the limit Docker enforces)", ge=0.01, le=64)
    ] = 0.5
    cpu_request: Annotated[
        Annotated[float, msgspec.Meta(ge=0, le=64)] | None,
        _meta(
            f"CPUs a replica's node reserves for it (default: {DEFAULT_CPU_REQUEST:g}, or "
            "the limit if it is lower)"
        ),
    ] = None
    memory_mb: Annotated[int, _meta("Memory per replica, MB", flag="--memory", ge=8, le=65536)] = (
        128
    )
    memory_request_mb: Annotated[
        Annotated[int, msgspec.Meta(ge=1, le=65536)] | None,
        _meta("Memory a replica's node reserves for it, MB (default: the limit)"),
    ] = None
    readiness_path: Annotated[
        str,
        _meta(
            "HTTP path of the readiness probe; empty for a TCP probe",
            max_length=1024,
            pattern=READINESS_PATH,
        ),
    ] = "/"
    request_timeout_s: Annotated[
        float,
        _meta(
            "Longest a call may take, seconds: waiting, connecting, the response whole",
            flag="--timeout-s",
            ge=0.1,
            le=3600,
        ),
    ] = 300.0
    response_start_timeout_s: Annotated[
        float,
        _meta(
            "Longest a replica may take to start its response, seconds (0: the call's)",
            ge=0,
            le=3600,
        ),
    ] = 0.0
    idle_timeout_s: Annotated[
        float,
        _meta("Longest pause within a response, seconds (0: the call's)", ge=0, le=3600),
    ] = 0.0
    stop_grace_s: Annotated[
        float,
        _meta(
            "Seconds a replica has to exit after SIGTERM before it is killed",
            ge=0,
            le=3600,
        ),
    ] = 10.0
    max_body_bytes: Annotated[
        int,
        _meta("Largest request body a call may send, bytes", ge=0, le=MAX_BODY_LIMIT),
    ] = 1 << 20
    concurrency_limit: Annotated[
        int,
        _meta(
            "Requests one replica serves at once (0: no limit)",
            flag="--concurrency",
            scaling=True,
            ge=0,
            le=10000,
        ),
    ] = 0
    min_replicas: Annotated[
        int, _meta("Fewest replicas", flag="--min", scaling=True, ge=0, le=MAX_REPLICAS_LIMIT)
    ] = 0
    max_replicas: Annotated[
        int,
        _meta(
            "Most replicas (0: the platform's cap)",
            flag="--max",
            scaling=True,
            ge=0,
            le=MAX_REPLICAS_LIMIT,
        ),
    ] = 0
    initial_scale: Annotated[
        int,
        _meta(
            "Replicas of a new function",
            flag="--initial",
            scaling=True,
            ge=0,
            le=MAX_REPLICAS_LIMIT,
        ),
    ] = 1
    scaling_metric: Annotated[
        ScalingMetric, _meta("What scaling follows", flag="--metric", scaling=True)
    ] = "concurrency"
    target: Annotated[
        float,
        _meta("Per-replica target of the metric", scaling=True, ge=0.01, le=1_000_000),
    ] = 100.0
    target_utilization: Annotated[
        float, _meta("Fraction of the target aimed at", scaling=True, ge=0.01, le=1)
    ] = 0.7
    cpu_target_pct: Annotated[
        Annotated[float, msgspec.Meta(ge=1, le=100)] | None,
        _meta("Also scale on CPU above this percent of the limit", scaling=True),
    ] = None
    scale_to_zero_grace_s: Annotated[
        float, _meta("Seconds without requests before zero", scaling=True, ge=0, le=86400)
    ] = 30.0
    stable_window_s: Annotated[
        float, _meta("Seconds the stable window averages", scaling=True, ge=6, le=3600)
    ] = 60.0
    panic_window_pct: Annotated[
        float, _meta("The panic window, percent of the stable one", scaling=True, ge=1, le=100)
    ] = 10.0
    panic_threshold_pct: Annotated[
        float,
        _meta("Panic at this percent of ready capacity", scaling=True, ge=110, le=1000),
    ] = 200.0
    scale_down_delay_s: Annotated[
        float, _meta("Seconds a scale-down waits", scaling=True, ge=0, le=3600)
    ] = 0.0
    max_scale_up_rate: Annotated[
        float, _meta("Most growth per decision, times ready", scaling=True, gt=1, le=1000)
    ] = 1000.0
    max_scale_down_rate: Annotated[
        float, _meta("Most shrinking per decision, ready divided by", scaling=True, gt=1, le=1000)
    ] = 2.0
    rollout: Annotated[
        RolloutStrategy,
        _meta(
            "How a new revision takes traffic: all at once, or in canary steps judged by "
            "its errors and latency against the current revision's",
            scaling=True,
        ),
    ] = "immediate"
    canary_steps: Annotated[
        list[CanaryStep],
        _meta(
            "The canary's share of traffic at each step, percent, rising (then 100)",
            flag="--canary-step",
            scaling=True,
            min_length=1,
            max_length=10,
        ),
    ] = msgspec.field(default_factory=lambda: [5, 25, 50])
    canary_step_s: Annotated[
        float, _meta("Seconds each canary step lasts at least", scaling=True, ge=1, le=86400)
    ] = 30.0
    canary_min_requests: Annotated[
        int,
        _meta(
            "Requests the canary must answer in a step before it is judged",
            scaling=True,
            ge=1,
            le=1_000_000,
        ),
    ] = 20
    canary_max_error_increase: Annotated[
        float,
        _meta(
            "How far the canary's 5xx ratio may exceed the current revision's (0.05: 5 points)",
            scaling=True,
            ge=0,
            le=1,
        ),
    ] = 0.05
    canary_max_latency_ratio: Annotated[
        float,
        _meta(
            "How many times the current revision's p95 latency the canary's may reach",
            scaling=True,
            ge=1,
            le=100,
        ),
    ] = 2.0
    canary_latency_slack_ms: Annotated[
        float,
        _meta(
            "A canary's p95 within this many ms of the current revision's is never too slow",
            scaling=True,
            ge=0,
            le=60_000,
        ),
    ] = 50.0
    secrets: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=DNS_LABEL)]],
        _meta(
            f"Secrets it reads, as files {SECRETS_PATH}/NAME/KEY (read-only, mode 0400)",
            flag="--secret",
            max_length=MAX_SECRETS,
        ),
    ] = []
    private: Annotated[bool, _meta("Calls need a token (function calls are open by default)")] = (
        False
    )
    read_only_root: Annotated[
        bool, _meta("The root filesystem is read-only (/tmp is a writable tmpfs)")
    ] = True

    @property
    def requested_cpu(self) -> float:
        """The CPUs placement reserves for one replica."""
        return min(self.cpu, DEFAULT_CPU_REQUEST) if self.cpu_request is None else self.cpu_request

    @property
    def requested_memory_mb(self) -> int:
        """The memory placement reserves for one replica (never more than its limit)."""
        return self.memory_mb if self.memory_request_mb is None else self.memory_request_mb

    def __post_init__(self) -> None:
        problems = spec_problems(self.__getattribute__)
        if problems:
            raise ValueError("; ".join(f"{field}: {message}" for field, message in problems))


def spec_problems(value: Callable[[str], Any]) -> list[tuple[str, str]]:
    """The rules that span fields, as (field, message) pairs; `value` gives a field's value
    (of a spec, or of a request body merged with the defaults)."""
    problems = []
    low, high, initial = value("min_replicas"), value("max_replicas"), value("initial_scale")
    if high and low > high:
        problems.append(("min_replicas", f"{low} is above max_replicas {high}"))
    if high and initial > high:
        problems.append(("initial_scale", f"{initial} is above max_replicas {high}"))
    start, whole = value("response_start_timeout_s"), value("request_timeout_s")
    if start > whole:
        problems.append(("response_start_timeout_s", f"{start} is above request_timeout_s"))
    cpu, cpu_request = value("cpu"), value("cpu_request")
    if cpu_request is not None and cpu_request > cpu:
        problems.append(("cpu_request", f"{cpu_request} is above cpu {cpu}"))
    memory, memory_request = value("memory_mb"), value("memory_request_mb")
    if memory_request is not None and memory_request > memory:
        problems.append(("memory_request_mb", f"{memory_request} is above memory_mb {memory}"))
    steps = value("canary_steps")
    if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        problems.append(("canary_steps", f"{steps} does not rise at every step"))
    named = value("secrets")
    if len(set(named)) != len(named):
        problems.append(("secrets", "a secret is named twice"))
    return problems


SPEC_FIELDS: tuple[str, ...] = FunctionSpec.__struct_fields__
SCALING_FIELDS: frozenset[str] = frozenset(
    field.name
    for field in msgspec.inspect.type_info(FunctionSpec).fields  # type: ignore[attr-defined]
    if isinstance(field.type, msgspec.inspect.Metadata) and (field.type.extra or {}).get("scaling")
)
SPEC_DEFAULTS: dict[str, Any] = {
    field.name: field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
    for field in msgspec.inspect.type_info(FunctionSpec).fields  # type: ignore[attr-defined]
    if not field.required
}
"""Every optional field's default (what a request body is merged with before the rules)."""


def spec_identity(spec: FunctionSpec) -> str:
    """A digest of what a revision runs: every field of its spec but the scaling settings
    (which change without a new revision). A revision's secrets are sealed for it alone."""
    fields = {name: getattr(spec, name) for name in SPEC_FIELDS if name not in SCALING_FIELDS}
    return hashlib.sha256(msgspec.json.encode(fields, order="sorted")).hexdigest()
