"""Helpers shared by the e2e test modules (a plain module: conftest.py files are not importable by name)."""

from __future__ import annotations

import os

import pytest

from ivr.testbed.localline import missing_pieces

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_line_pieces() -> None:
    """Skip (fail under CI) an e2e test when Asterisk or sipp is not installed."""
    missing = missing_pieces()
    if missing:
        reason = "e2e needs " + " and ".join(missing) + "; run scripts/setup.sh"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
