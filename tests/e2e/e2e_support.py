"""Helpers shared by the e2e test modules (a plain module: conftest.py files are not importable by name)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.testbed import localline
from ivr.testbed.localline import LocalLine, missing_pieces

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_line_pieces() -> None:
    """Skip (fail under CI) an e2e test when Asterisk or sipp is not installed."""
    missing = missing_pieces()
    if missing:
        reason = "e2e needs " + " and ".join(missing) + "; run scripts/setup.sh"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@contextlib.contextmanager
def running_line(var: Path, **prepare: Any) -> Iterator[LocalLine]:
    """A private line (Asterisk + `ivr serve`) in `var` for a test module, stopped whatever happens;
    `prepare` goes to LocalLine.prepare (e.g. max_calls). Skips (fails under CI) without the pieces."""
    require_line_pieces()
    line = LocalLine.prepare(var, **prepare)
    line.start()
    try:
        yield line
    finally:
        line.stop()


def scrape_metrics(line: LocalLine) -> dict[str, float]:
    """GET /metrics of the running server: sample name with labels -> value."""
    return localline.scrape_metrics(line.settings.metrics_host, line.settings.metrics_port)
