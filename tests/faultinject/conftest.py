"""Fault tests: real processes on PRIVATE PostgreSQL / Redis / RabbitMQ instances the
test starts (tests/faults.py); shared services are never touched by a fault."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/faults.py

from faults import PrivatePostgres, PrivateRedis

from .rig import FaultRig


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as pg:
        yield pg


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    with PrivateRedis() as instance:
        yield instance


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., FaultRig]]:
    made: list[FaultRig] = []

    def make(**options: Any) -> FaultRig:
        rig = FaultRig(tmp_path / f"rig{len(made)}", **options)
        made.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in made:
            rig.close()
