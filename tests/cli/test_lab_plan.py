"""The lab's plan (names, addresses, the Kafka quorum) and what `shoal lab` says when
there is no lab or a name is wrong (no namespace is made here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.local.lab import Lab
from services.local.lab_net import LabError, LabPlan

SHOAL = str(Path(sys.executable).parent / "shoal")


def test_the_plan_names_every_host_and_broker_with_its_own_address() -> None:
    plan = LabPlan(3, 3)
    assert [h.address for h in plan.all_hosts] == ["10.233.0.11", "10.233.0.12", "10.233.0.13"]
    assert [b.name for b in plan.all_brokers] == ["shoal-b1", "shoal-b2", "shoal-b3"]
    assert plan.bootstrap == "10.233.0.101:9092,10.233.0.102:9092,10.233.0.103:9092"
    assert plan.voters == ("1@10.233.0.101:9093", "2@10.233.0.102:9093", "3@10.233.0.103:9093")
    links = [n.link for n in (*plan.all_hosts, *plan.all_brokers)] + [plan.uplink]
    assert len(set(links)) == len(links) and all(len(f"{link}p") <= 15 for link in links)
    other = LabPlan(3, 3, tag="tlab", subnet="10.234.0")
    assert not {n.name for n in other.all_hosts} & {n.name for n in plan.all_hosts}


def test_a_wrong_name_says_which_exist(tmp_path: Path) -> None:
    lab = Lab(tmp_path, LabPlan(2, 1))
    with pytest.raises(
        LabError, match=r"no lab host or broker 'h9' \(hosts: h1, h2; brokers: b1\)"
    ):
        lab.cut("h9", off=True)


def test_commands_without_a_lab_say_so_and_exit_1(tmp_path: Path) -> None:
    env = {**os.environ, "SHOAL_STATE": str(tmp_path)}
    for command in (["status"], ["partition", "h1"], ["down"]):
        done = subprocess.run(
            [SHOAL, "lab", *command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1, done
        assert "no lab is up here: run `shoal lab up` first" in done.stderr
