"""A frozen PostgreSQL (every server process stopped with SIGSTOP, as a hung host or a stalled disk would)
once gave a caller 100 s of dead air, until the database came back. Now the caller hears the hold prompt,
then the apology and the operator, and never waits more than the action limit plus 2 s without a prompt.
The line recovers by itself when the database does."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/, for dbfixtures

from dbfixtures import PgCluster, find_pg_bin
from e2e_support import IN_CI, running_line
from test_calls import ACTION_LIMIT, IVAN, actions_of, assert_never_silent, call, call_timeline

from ivr.testbed.localline import LocalLine, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PgCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if IN_CI:
            pytest.fail("PostgreSQL binaries not found (scripts/setup.sh installs postgresql)")
        pytest.skip("PostgreSQL binaries not found")
    as_user = "postgres" if os.geteuid() == 0 else None
    if as_user is not None:
        pwd.getpwnam(as_user)
    # A cluster of its own: this test freezes it.
    cluster = PgCluster(
        bin_dir=bin_dir,
        root=Path(tempfile.mkdtemp(prefix="ivr-pg-frozen-")),
        port=free_port(),
        as_user=as_user,
    )
    cluster.start()
    try:
        cluster.admin("CREATE DATABASE ivr")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def pg_line(tmp_path_factory: pytest.TempPathFactory, postgres: PgCluster) -> Iterator[LocalLine]:
    with running_line(tmp_path_factory.mktemp("e2e-pg") / "var", database_url=postgres.url("ivr")) as line:
        yield line


def _server_pids(cluster: PgCluster) -> list[int]:
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    return [postmaster, *map(int, children)]


def test_a_frozen_database_gives_hold_then_apology_and_the_line_recovers(
    pg_line: LocalLine, postgres: PgCluster
) -> None:
    warm = call(pg_line, "0505", IVAN, "1")  # the server now holds pooled connections to the database
    assert "balance.report:ok" in actions_of(warm)

    frozen = _server_pids(postgres)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        result = call(pg_line, "0505", IVAN, "1", wait=12.0)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)

    assert result.sipp_exit == 0, result.sipp_errors
    assert "subscriber.identify:error" in actions_of(result)
    assert result.variables.get("IVR_RESULT") == "transfer"
    assert result.record is not None
    timeline = call_timeline(pg_line.log_for(result.record.uniqueid))
    events = [what for _at, what in timeline]
    assert any(what.startswith("play please_wait") for what in events), events
    assert any(what.startswith("play error_apology") for what in events), events
    assert_never_silent(timeline, ACTION_LIMIT + 2.0)

    again = call(pg_line, "0505", IVAN, "1")  # the database is back: so is the line
    assert "balance.report:ok" in actions_of(again)
