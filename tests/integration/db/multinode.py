"""Shared by the database tests (a plain module: conftest.py files are not importable by name)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ivr.db.session import UowFactory

R = TypeVar("R")
Nodes = tuple[UowFactory, UowFactory]  # two server nodes over one database (the `nodes` fixture)


def all_at_once(count: int, work: Callable[[int], R]) -> list[R]:
    """`work(0)` ... `work(count - 1)` in `count` threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run(i: int) -> R:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))
