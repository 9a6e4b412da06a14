"""The ECS services a stage deploys (`ServiceTarget`) and the one order their locks are taken in:
the standard library alone, so the one-shot CLI (which imports `deployer.stages`) runs without
pydantic (.venv-cli holds botocore and its dependencies only)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceTarget:
    """One ECS service a stage deploys, and the containers whose image it replaces there."""

    cluster: str
    service: str
    containers: tuple[str, ...]

    @property
    def key(self) -> str:
        """`cluster/service`: the lock's key, the order locks are taken in, and what logs print."""
        return f"{self.cluster}/{self.service}"


def lock_order(targets: Iterable[ServiceTarget]) -> list[ServiceTarget]:
    """`targets` in the one global order every release takes service locks in (by `cluster/service`),
    whatever order a stage lists them: two releases needing the same services never each hold one
    the other waits for."""
    return sorted(targets, key=lambda target: target.key)
