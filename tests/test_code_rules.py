"""The rules our code lives by, held by tools: ruff, mypy --strict, import-linter (its
contracts in `.importlinter`), radon, and the sizes of functions and modules."""

from __future__ import annotations

import ast
import configparser
import importlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("events", "services")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
PURE_NAMES = ("decide", "windows", "placement", "plan", "rooms", "policy", "reconcile")


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def sources() -> list[Path]:
    return sorted(p for package in CHECKED for p in (ROOT / package).rglob("*.py"))


def test_ruff_finds_nothing() -> None:
    result = run_tool("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted() -> None:
    result = run_tool("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_benchmark_imports() -> None:
    """No test runs the benchmarks: each must at least import (a name removed from a
    module that one imports broke bench.failover once)."""
    for path in sorted((ROOT / "bench").glob("*.py")):
        importlib.import_module(f"bench.{path.stem}")


def test_mypy_strict_finds_nothing() -> None:
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_hold() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", ".importlinter"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout, result.stdout


def test_the_import_contracts_list_every_projection_and_pure_module() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    listed = set(config["importlinter:contract:pure"]["source_modules"].split())
    projections = {
        f"events.projections.{p.stem}"
        for p in (ROOT / "events" / "projections").glob("*.py")
        if p.stem != "__init__"
    }
    deciders = {
        f"services.{p.parent.name}.{p.stem}"
        for p in (ROOT / "services").glob("*/*.py")
        if p.stem in PURE_NAMES
    }
    assert projections | deciders | {"events.spec", "events.lifecycle"} <= listed
    for module in listed:
        assert (ROOT / (module.replace(".", "/") + ".py")).exists(), module


def test_no_function_is_rated_d_or_worse_by_radon() -> None:
    result = run_tool("radon", "cc", "--json", "--min", "D", *CHECKED)
    assert result.returncode == 0, result.stderr
    found = {
        f"{path}:{block['lineno']} {block['name']} {block['rank']} ({block['complexity']})"
        for path, blocks in json.loads(result.stdout).items()
        for block in blocks
    }
    assert not found, sorted(found)


def test_functions_and_modules_stay_small() -> None:
    too_long = []
    for path in sources():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines}")
    assert not too_long, too_long
