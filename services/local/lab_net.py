"""The lab's network: each host and each broker is a network namespace of its own with one
address on a switch (a bridge in a namespace of the lab's own, so the machine's own
firewall and Docker's rules are never involved), and this machine reaches every lab
address through one more link into that switch. A host is cut off by taking its link on
the switch down, healed by bringing it up, and killed by killing every process in its
namespace. Needs root and iproute2."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass

BRIDGE = "lab0"


class LabError(RuntimeError):
    """The lab cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class LabNode:
    """A host or a broker: its namespace, its address and its link's name."""

    name: str
    address: str
    link: str

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.name}"


@dataclass(frozen=True)
class LabPlan:
    hosts: int
    brokers: int
    tag: str = "shoal"
    """What the lab's namespaces and links are named after (two labs need two tags)."""
    subnet: str = "10.233.0"
    """The lab's /24: this machine is .1, hosts .11 up, brokers .101 up."""

    def host(self, index: int) -> LabNode:
        return LabNode(
            f"{self.tag}-h{index}", f"{self.subnet}.{10 + index}", self._link(f"h{index}")
        )

    def broker(self, index: int) -> LabNode:
        return LabNode(
            f"{self.tag}-b{index}", f"{self.subnet}.{100 + index}", self._link(f"b{index}")
        )

    def _link(self, what: str) -> str:
        return f"{self.tag[:6]}{what}"  # a link's name is at most 15 characters

    @property
    def switch(self) -> str:
        return f"{self.tag}-lab"

    @property
    def uplink(self) -> str:
        return self._link("up")

    @property
    def all_hosts(self) -> list[LabNode]:
        return [self.host(i) for i in range(1, self.hosts + 1)]

    @property
    def all_brokers(self) -> list[LabNode]:
        return [self.broker(j) for j in range(1, self.brokers + 1)]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{b.address}:9092" for b in self.all_brokers)

    @property
    def voters(self) -> tuple[str, ...]:
        return tuple(f"{j}@{b.address}:9093" for j, b in enumerate(self.all_brokers, 1))


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def check_can_build() -> None:
    """Root and iproute2, or a clear error."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it makes network namespaces and runs dockerd)")
    if shutil.which("ip") is None:
        raise LabError("the lab needs iproute2's `ip`: apt-get install iproute2")
    if shutil.which("nsenter") is None:
        raise LabError("the lab needs util-linux's `nsenter`: apt-get install util-linux")


def exists(name: str) -> bool:
    return os.path.exists(f"/var/run/netns/{name}")


def make_switch(plan: LabPlan) -> None:
    """The switch's namespace and bridge, and this machine's link into it (once)."""
    if exists(plan.switch):
        return
    ip("netns", "add", plan.switch)
    ip("-n", plan.switch, "link", "add", BRIDGE, "type", "bridge")
    ip("-n", plan.switch, "link", "set", BRIDGE, "up")
    ip("link", "add", plan.uplink, "type", "veth", "peer", "name", f"{plan.uplink}p")
    _plug(plan, f"{plan.uplink}p")
    ip("addr", "add", f"{plan.subnet}.1/24", "dev", plan.uplink)
    ip("link", "set", plan.uplink, "up")


def _plug(plan: LabPlan, port: str) -> None:
    ip("link", "set", port, "netns", plan.switch)
    ip("-n", plan.switch, "link", "set", port, "master", BRIDGE)
    ip("-n", plan.switch, "link", "set", port, "up")


def make_node(plan: LabPlan, node: LabNode) -> None:
    """The node's namespace with its address on the switch (once)."""
    if exists(node.name):
        return
    ip("netns", "add", node.name)
    ip("link", "add", node.link, "type", "veth", "peer", "name", f"{node.link}p")
    ip("link", "set", node.link, "netns", node.name)
    _plug(plan, f"{node.link}p")
    ip("-n", node.name, "addr", "add", f"{node.address}/24", "dev", node.link)
    ip("-n", node.name, "link", "set", node.link, "up")
    ip("-n", node.name, "link", "set", "lo", "up")


def cut(plan: LabPlan, node: LabNode, *, off: bool) -> None:
    """Take the node's link on the switch down (`off`) or up again."""
    ip("-n", plan.switch, "link", "set", f"{node.link}p", "down" if off else "up")


def pids_in(name: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def kill_all(name: str) -> int:
    """SIGKILL every process in the namespace; how many there were."""
    found = pids_in(name)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(found)


def remove(name: str) -> None:
    if exists(name):
        kill_all(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def remove_switch(plan: LabPlan) -> None:
    subprocess.run(["ip", "link", "del", plan.uplink], capture_output=True)
    remove(plan.switch)
