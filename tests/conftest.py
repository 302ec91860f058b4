"""Top-level pytest configuration: command-line options, and the root logger restored after each test
(markers live in pyproject.toml)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ivr")
    group.addoption(
        "--keep-e2e-var",
        action="store_true",
        default=False,
        help="keep the e2e run's temporary var dir (database, logs, Asterisk config) and print its path",
    )


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs a command in-process (setup_logging) leaves a handler on the root logger writing to
    its captured, later closed, stderr; the next tests' log lines would then print "Logging error"
    tracebacks. Put the root logger back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers and getattr(handler, "_ivr", False):  # pytest's own are its business
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
