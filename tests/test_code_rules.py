"""The rules our code lives by, held by tools: ruff, mypy --strict, and import-linter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("api", "autoscaler", "healer", "node_agent", "scheduler")
SHARED = ("common", "local", "cli")
PURE_MODULES = ("decide", "windows", "placement", "plan", "policy", "fold", "lifecycle")
IO_PACKAGES = ("aiokafka", "docker", "aiohttp")


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def present_services() -> list[str]:
    return [name for name in SERVICES if (ROOT / "services" / name / "__init__.py").exists()]


def importlinter_config() -> str:
    """Contracts for the services that exist now; the set grows as services are built."""
    services = [f"services.{name}" for name in present_services()]
    contracts = [
        "[importlinter]\nroot_packages =\n    events\n    services\n"
        "include_external_packages = True\n",
        "[importlinter:contract:events-imports-no-service]\nname = events imports no service\n"
        "type = forbidden\nsource_modules =\n    events\nforbidden_modules =\n    services\n",
    ]
    if services:
        shared = "\n".join(f"    services.{name}" for name in SHARED)
        contracts.append(
            "[importlinter:contract:shared-imports-no-service]\n"
            "name = shared code imports no service\ntype = forbidden\n"
            f"source_modules =\n{shared}\nforbidden_modules =\n"
            + "".join(f"    {s}\n" for s in services if s != "services.cli")
        )
    if len(services) > 1:
        contracts.append(
            "[importlinter:contract:services-independent]\n"
            "name = services never import each other\ntype = independence\nmodules =\n"
            + "".join(f"    {s}\n" for s in services)
        )
    pure = [
        f"services.{name}.{module}"
        for name in present_services()
        for module in PURE_MODULES
        if (ROOT / "services" / name / f"{module}.py").exists()
    ]
    if pure:
        contracts.append(
            "[importlinter:contract:pure-deciders]\nname = pure deciders do no I/O\n"
            "type = forbidden\nallow_indirect_imports = True\nsource_modules =\n"
            + "".join(f"    {m}\n" for m in pure)
            + "forbidden_modules =\n"
            + "".join(f"    {p}\n" for p in IO_PACKAGES)
        )
    return "\n".join(contracts)


def test_ruff_finds_nothing() -> None:
    result = run_tool("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted() -> None:
    result = run_tool("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_hold(tmp_path: Path) -> None:
    config = tmp_path / "importlinter.ini"
    config.write_text(importlinter_config())
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower() or " 0 broken" in result.stdout.lower()
