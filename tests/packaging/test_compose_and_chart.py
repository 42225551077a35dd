"""docker-compose.yml validated by Debian's docker-compose, and the Helm chart linted and
rendered by helm, with the rendered manifests checked for what an operator relies on."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
CHART = ROOT / "charts" / "shoal"
STATE = Path(os.environ.get("SHOAL_STATE", ROOT / ".shoal"))
HELM_BUILD_WAIT_S = 900
SERVICES = {"api", "scheduler", "autoscaler", "healer", "node-agent"}


def compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing: apt-get install docker-compose"
    return subprocess.run(
        [tool, "-f", str(ROOT / "docker-compose.yml"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


COMPOSE_ROLES = {"api": "api", "scheduler": "scheduler", "autoscaler": "autoscaler"}
COMPOSE_ROLES |= {"healer": "healer", "node-agent": "node"}
PASSWORDS_ENV = {
    f"SHOAL_KAFKA_PASSWORD_{role.upper()}": f"pw-{role}"
    for role in ("admin", *COMPOSE_ROLES.values())
} | {"SHOAL_SECRETS_KEY": "c2VhbGluZy1rZXk="}
"""What compose-env.sh writes besides the api token: Kafka passwords and the sealing key."""


def test_compose_file_is_valid_and_runs_every_part() -> None:
    checked = compose("config", SHOAL_API_TOKEN="compose-token-123", **PASSWORDS_ENV)
    assert checked.returncode == 0, checked.stderr
    resolved = yaml.safe_load(checked.stdout)
    services = resolved["services"]
    seconds = {f"{name}-2" for name in ("api", "scheduler", "autoscaler", "healer")}
    assert set(services) == SERVICES | {"kafka", "kafka-setup"} | seconds
    assert all(services[name]["profiles"] == ["ha"] for name in seconds), "only on asking"
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] == (
        "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka["KAFKA_SUPER_USERS"] == "User:admin"
    for role in COMPOSE_ROLES.values():
        assert (
            f'user_{role}="pw-{role}"' in kafka["KAFKA_LISTENER_NAME_CLIENT_PLAIN_SASL_JAAS_CONFIG"]
        )
    setup = services["kafka-setup"]
    assert setup["command"][-1] == "kafka-setup"
    assert setup["environment"]["SHOAL_KAFKA_SASL_USERNAME"] == "admin"
    assert services["kafka"]["image"].startswith("apache/kafka:4")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    modules = {name: services[name]["command"][-1] for name in SERVICES}
    assert modules == {
        "api": "services.api",
        "scheduler": "services.scheduler",
        "autoscaler": "services.autoscaler",
        "healer": "services.healer",
        "node-agent": "services.node_agent",
    }
    assert {services[name]["image"] for name in SERVICES} == {"shoal:dev"}
    assert all(services[name]["build"]["context"] == str(ROOT) for name in SERVICES)
    sockets = [v for v in services["node-agent"]["volumes"] if "docker.sock" in str(v)]
    assert sockets, services["node-agent"]["volumes"]
    shm = [v for v in services["node-agent"]["volumes"] if "/dev/shm/shoal-secrets" in str(v)]
    assert shm, "the replicas' secret files are on the host's tmpfs, where dockerd finds them"
    assert not [n for n in SERVICES - {"node-agent"} if services[n].get("volumes")]
    assert services["api"]["environment"]["SHOAL_API_HTTP_HOST"] == "0.0.0.0"
    assert services["api"]["environment"]["SHOAL_API_TOKEN"] == "compose-token-123"
    assert services["api"]["environment"]["SHOAL_API_DASHBOARD_PORT"] == "8081"
    sealing = {n for n in SERVICES if "SHOAL_SECRETS_KEY" in services[n]["environment"]}
    assert sealing == {"api", "node-agent"}, "only who seals and who opens get the key"
    for name in SERVICES:
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
        ready = services[name]["depends_on"]["kafka-setup"]["condition"]
        assert ready == "service_completed_successfully"
        assert "readyz" in " ".join(services[name]["healthcheck"]["test"])
        env = services[name]["environment"]
        role = COMPOSE_ROLES[name]
        assert (env["SHOAL_KAFKA_SASL_USERNAME"], env["SHOAL_KAFKA_SASL_PASSWORD"]) == (
            role,
            f"pw-{role}",
        )


def test_the_ha_profile_runs_a_second_api_and_decider_on_ports_100_up() -> None:
    checked = compose("config", SHOAL_API_TOKEN="compose-token-123", **PASSWORDS_ENV)
    assert checked.returncode == 0, checked.stderr
    services = yaml.safe_load(checked.stdout)["services"]
    ports = {"api": "8080", "scheduler": "9102", "autoscaler": "9101", "healer": "9103"}
    for name, port in ports.items():
        first, second = services[name], services[f"{name}-2"]
        variable = f"SHOAL_{name.upper()}_HTTP_PORT"
        assert second["command"] == first["command"]
        assert int(second["environment"][variable]) == int(port) + 100
        assert second["environment"]["SHOAL_KAFKA_SASL_USERNAME"] == name
        assert f":{int(port) + 100}/readyz" in " ".join(second["healthcheck"]["test"])
        instance = f"SHOAL_{name.upper()}_INSTANCE"
        assert (first["environment"][instance], second["environment"][instance]) == (
            f"{name}-1",
            f"{name}-2",
        ), "instances apart by name (the host network gives them one hostname and pid)"
    assert services["api-2"]["environment"]["SHOAL_API_DASHBOARD_PORT"] == "8181"
    assert services["api-2"]["environment"]["SHOAL_API_TOKEN"] == "compose-token-123"


def test_compose_refuses_to_run_without_a_token_or_kafka_passwords(tmp_path: Path) -> None:
    assert "run ./scripts/compose-env.sh" in compose("config", SHOAL_API_TOKEN="t" * 16).stderr
    written = tmp_path / ".env"
    script = str(ROOT / "scripts" / "compose-env.sh")
    made = subprocess.run(["bash", script, str(written)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert written.stat().st_mode & 0o077 == 0
    first = written.read_text()
    assert {line.split("=", 1)[0] for line in first.splitlines()} == {
        "SHOAL_API_TOKEN",
        *PASSWORDS_ENV,
    }
    subprocess.run(["bash", script, str(written)], check=True, capture_output=True)
    assert written.read_text() == first, "values already there are kept"
    assert compose("--env-file", str(written), "config").returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "SHOAL_API_TOKEN"} | PASSWORDS_ENV
    tool = shutil.which("docker-compose")
    assert tool
    refused = subprocess.run(
        [tool, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "set SHOAL_API_TOKEN" in refused.stderr


@cache
def helm() -> str:
    """The helm binary: SHOAL_HELM, or the one scripts/test.sh builds in the background."""
    path = Path(os.environ.get("SHOAL_HELM", STATE / "tools" / "helm"))
    failed = path.parent / "helm.failed"
    log = STATE / "logs" / "helm-build.log"
    deadline = time.monotonic() + HELM_BUILD_WAIT_S
    while not path.exists():
        if failed.exists() or time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log.exists() else "(no build log)"
            raise AssertionError(
                f"helm is not at {path}: scripts/test.sh builds it with `go install "
                f"helm.sh/helm/v3/cmd/helm` (run it, or set SHOAL_HELM). Build log:\n{tail}"
            )
        time.sleep(2)
    return str(path)


def render(*sets: str) -> subprocess.CompletedProcess[str]:
    args = [helm(), "template", "demo", str(CHART)]
    for value in sets:
        args += ["--set", value]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def manifests(*sets: str) -> list[dict[str, Any]]:
    rendered = render("api.token=chart-token-123", *sets)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in docs
        if d["kind"] in ("Deployment", "DaemonSet")
    }


def test_helm_lint_passes() -> None:
    linted = subprocess.run(
        [helm(), "lint", str(CHART), "--strict", "--set", "api.token=chart-token-123"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_rendered_chart_has_probes_resources_and_no_privileged_pod() -> None:
    docs = manifests()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "DaemonSet", "Deployment", "Deployment", "Deployment",
                     "Deployment", *["PodDisruptionBudget"] * 4, "Secret", "Service"]  # fmt: skip
    found = workloads(docs)
    assert set(found) == SERVICES
    assert found["node-agent"]["kind"] == "DaemonSet"
    for name, workload in found.items():
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        assert not container["securityContext"].get("privileged", False), name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["command"][-1] == f"services.{name.replace('-', '_')}"
        host_paths = [v for v in pod.get("volumes", []) if "hostPath" in v]
        if name == "node-agent":
            assert [v["hostPath"]["path"] for v in host_paths] == [
                "/var/run/docker.sock",
                "/dev/shm/shoal-secrets",
            ]
            assert container["securityContext"]["runAsUser"] == 0
        else:
            assert not host_paths, name
            assert pod["securityContext"]["runAsNonRoot"] is True, name
    for decider in ("scheduler", "autoscaler", "healer"):
        assert found[decider]["spec"]["replicas"] == 2, "one leads, one stands by"
        assert "strategy" not in found[decider]["spec"], "rolled: another instance takes over"
    assert found["api"]["spec"]["replicas"] == 2
    api_env = {
        e["name"]: e for e in found["api"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert api_env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert api_env["SHOAL_API_PEER_URL"]["value"] == "http://$(POD_IP):8080"
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert {
        b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for b in budgets
    } == (SERVICES - {"node-agent"})
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["data"]["SHOAL_HEALER_LEADER_SESSION_S"] == "6"


ROLE_OF = {"api": "api", "scheduler": "scheduler", "autoscaler": "autoscaler"}
ROLE_OF |= {"healer": "healer", "node-agent": "node"}
PASSWORDS = [f"kafka.sasl.passwords.{role}=pw-{role}" for role in ROLE_OF.values()]


def test_settings_reach_the_pods_through_configmap_and_secret() -> None:
    docs = manifests(
        "kafka.bootstrap=broker-0.kafka:9093",
        "kafka.securityProtocol=SASL_SSL",
        "kafka.sasl.mechanism=SCRAM-SHA-512",
        *PASSWORDS,
        "kafka.setup.enabled=true",
        "kafka.setup.adminPassword=pw-admin",
        "kafka.tls.secretName=kafka-ca",
        "secrets.sealingKey=c2VhbGluZw==",
    )
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["data"]["SHOAL_KAFKA_BOOTSTRAP"] == "broker-0.kafka:9093"
    assert config["data"]["SHOAL_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["data"]["SHOAL_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["data"]["SHOAL_KAFKA_SSL_CAFILE"] == "/etc/shoal/kafka-tls/ca.crt"
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    own = {f"kafka-password-{role}": f"pw-{role}" for role in (*ROLE_OF.values(), "admin")}
    assert secret["stringData"] == {
        "api-token": "chart-token-123",
        "sealing-key": "c2VhbGluZw==",
        **own,
    }
    found = workloads(docs)
    api = found["api"]["spec"]["template"]["spec"]["containers"][0]
    token = next(e for e in api["env"] if e["name"] == "SHOAL_API_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["key"] == "api-token"
    for name, workload in found.items():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        sealing = [e for e in container["env"] if e["name"] == "SHOAL_SECRETS_KEY"]
        assert bool(sealing) == (name in ("api", "node-agent")), name
        assert all(e["valueFrom"]["secretKeyRef"]["key"] == "sealing-key" for e in sealing)
    for name, workload in found.items():
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        role = ROLE_OF[name]
        assert env["SHOAL_KAFKA_SASL_USERNAME"]["value"] == role, name
        key = env["SHOAL_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
        assert key == f"kafka-password-{role}", name
        assert any(v["name"] == "kafka-tls" for v in pod["volumes"]), name
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "api"
    (job,) = [d for d in docs if d["kind"] == "Job"]
    assert "post-install" in job["metadata"]["annotations"]["helm.sh/hook"]
    (setup,) = job["spec"]["template"]["spec"]["containers"]
    assert setup["command"][-1] == "kafka-setup"
    env = {e["name"]: e for e in setup["env"]}
    assert env["SHOAL_KAFKA_SASL_USERNAME"]["value"] == "admin"
    assert (
        env["SHOAL_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
        == "kafka-password-admin"
    )


def test_each_role_password_is_required_unless_a_secret_holds_them() -> None:
    missing = render("api.token=chart-token-123", "kafka.sasl.mechanism=PLAIN", *PASSWORDS[:-1])
    assert missing.returncode != 0 and "kafka.sasl.passwords.node" in missing.stderr
    docs = manifests("kafka.sasl.mechanism=PLAIN", "kafka.sasl.existingSecret=kafka-roles")
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert set(secret["stringData"]) == {"api-token"}
    for workload in workloads(docs).values():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        password = next(e for e in container["env"] if e["name"] == "SHOAL_KAFKA_SASL_PASSWORD")
        assert password["valueFrom"]["secretKeyRef"]["name"] == "kafka-roles"


def test_the_chart_refuses_to_render_without_a_token() -> None:
    refused = render()
    assert refused.returncode != 0
    assert "set api.token" in refused.stderr
    own = render("api.existingSecret=my-token")
    assert own.returncode == 0, own.stderr


def test_the_grafana_dashboard_queries_only_metrics_the_services_export() -> None:
    dashboard = json.loads((ROOT / "charts" / "grafana" / "shoal-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(shoal_[a-z_]+)", target["expr"])
    }
    exported = set()
    for source in [*(ROOT / "services").rglob("*.py"), *(ROOT / "events").rglob("*.py")]:
        exported |= set(re.findall(r'"(shoal_[a-z_]+)"', source.read_text()))
    suffixes = ("_bucket", "_count", "_sum")
    missing = {
        q
        for q in queried
        if q not in exported
        and not any(q.endswith(s) and q[: -len(s)] in exported for s in suffixes)
    }
    assert not missing, f"the dashboard queries metrics nobody exports: {sorted(missing)}"
    assert len(queried) >= 12
