"""Top-level pytest configuration: command-line options only (markers live in pyproject.toml)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ivr")
    group.addoption(
        "--keep-e2e-var",
        action="store_true",
        default=False,
        help="keep the e2e run's temporary var dir (database, logs, Asterisk config) and print its path",
    )
