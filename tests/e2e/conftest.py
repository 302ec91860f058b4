"""The real line for e2e tests: the project-local Asterisk and `ivr serve`, started once per test session
(ivr.testbed.localline: temporary var dir, fresh demo database, own loopback ports and AMI secret).
Without Asterisk or sipp the tests skip with the reason, unless CI is set: then they fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import running_line

from ivr.testbed.localline import LocalLine


@pytest.fixture(scope="session")
def line_stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LocalLine]:
    with running_line(tmp_path_factory.mktemp("e2e") / "var") as line:
        try:
            yield line
        finally:
            if request.config.getoption("--keep-e2e-var"):
                print(f"\ne2e var dir kept: {line.var}")
