"""What a sandbox worker reports of its boundary, and what a run says of its workers: the record, the gaps, one line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

REQUIRED_NAMESPACES = ("user", "pid", "mount", "network")


@dataclass
class Isolation:
    """Which layers a worker runs inside; recorded in the metric file, the trace and the report."""

    namespaces: list[str] = field(default_factory=list)  # of user, pid, mount, network, ipc, uts
    filesystem: str = "host"  # "read-only view" once the new root is in place
    network: str = "host"  # "none" inside a network namespace
    seccomp: bool = False
    no_new_privs: bool = False
    capabilities_dropped: bool = False
    limits: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # what could not be set, and why

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def boundary_gaps(isolation: dict[str, Any]) -> list[str]:
    """What a worker's reported isolation lacks of the boundary model-written code needs; empty when complete."""
    gaps = [f"{name} namespace" for name in REQUIRED_NAMESPACES if name not in isolation.get("namespaces", [])]
    if isolation.get("filesystem") != "read-only view":
        gaps.append("read-only file system view")
    if not isolation.get("no_new_privs"):
        gaps.append("no_new_privs")
    return gaps


def run_isolation(isolations: list[dict[str, Any]]) -> dict[str, Any]:
    """What a run's metric file and trace say of its sandboxes: the one isolation every episode had, or each
    distinct one; `{"episodes": 0}` when no episode ran code here (replay, or a toolcall run with no task)."""
    distinct: list[dict[str, Any]] = []
    for isolation in isolations:
        if isolation and isolation not in distinct:
            distinct.append(isolation)
    episodes = sum(1 for isolation in isolations if isolation)
    if len(distinct) == 1:
        return {"episodes": episodes, **distinct[0]}
    return {"episodes": episodes, "distinct": distinct} if distinct else {"episodes": 0}


def describe_isolation(sandbox: dict[str, Any]) -> str:
    """One line for the terminal and the report: the layers, or what was missing."""
    if not sandbox.get("episodes"):
        return "no code ran in a sandbox in this run"
    if "distinct" in sandbox:
        return f"{len(sandbox['distinct'])} different isolations across {sandbox['episodes']} episodes (see the metric file)"
    layers = [f"namespaces {', '.join(sandbox.get('namespaces', [])) or 'none'}", f"file system {sandbox.get('filesystem')}"]
    layers += [f"network {sandbox.get('network')}", f"seccomp {'on' if sandbox.get('seccomp') else 'off'}"]
    gaps = boundary_gaps(sandbox)
    return "; ".join(layers) + (f"; MISSING {', '.join(gaps)} (--unsafe-local-executor)" if gaps else "")
