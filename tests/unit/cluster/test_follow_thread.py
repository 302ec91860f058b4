"""The version follower's own machinery (ivr.cluster.follow), without a line to render: the polling thread
starts once, survives a failing poll and stops; a database out of reach is logged once per outage, with
nothing secret in the log, and its return is said."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import pytest

from ivr.cluster.follow import VersionFollower
from ivr.config import Settings
from ivr.db.migrate import upgrade
from ivr.db.session import DbTimeouts, UowFactory, make_uow_factory

FOLLOW_LOG = "ivr.cluster.follow"
PASSWORD = "s3cret-follow-pw"


def settings_in(tmp_path: Path, **changes: object) -> Settings:
    return Settings(
        home=tmp_path,
        var_dir=tmp_path / "var",
        prompts_dir=tmp_path / "prompts",
        database_url=f"sqlite:///{tmp_path / 'ivr.sqlite3'}",
        **changes,  # type: ignore[arg-type]
    )


class PollCounter(VersionFollower):
    """A follower whose poll fails the first time and counts the others."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, make_uow_factory(settings.db_url))
        self.polls = 0
        self.second_poll = threading.Event()

    def apply_once(self) -> dict[str, int]:
        self.polls += 1
        if self.polls == 1:
            raise RuntimeError("a poll that fails")
        self.second_poll.set()
        return {}


def test_the_thread_polls_survives_a_failing_poll_and_stops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    follower = PollCounter(settings_in(tmp_path, follow_seconds=0.01))
    assert not follower.running
    with caplog.at_level(logging.ERROR, logger=FOLLOW_LOG):
        follower.start()
        thread = follower._thread
        follower.start()  # a second start keeps the one thread
        assert follower._thread is thread and thread is not None and thread.daemon
        assert follower.second_poll.wait(30.0), "no poll after the failing one"
        follower.stop()
    assert not follower.running and not thread.is_alive()
    assert any("poll failed" in r.getMessage() for r in caplog.records)
    follower.stop()  # stopping twice is harmless
    follower.uow_factory.dispose()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_database_out_of_reach_is_logged_once_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_in(tmp_path)
    unreachable = make_uow_factory(
        f"postgresql+psycopg://ivr:{PASSWORD}@127.0.0.1:{closed_port()}/ivr", timeouts=DbTimeouts(connect=1)
    )
    follower = VersionFollower(settings, unreachable)
    with caplog.at_level(logging.INFO, logger=FOLLOW_LOG):
        for _ in range(3):
            assert follower.apply_once() == {}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot read the versions" in errors[0].getMessage()
    assert PASSWORD not in caplog.text
    unreachable.dispose()

    # The database answers again (here: another one, migrated, with no versions): said once.
    upgrade(settings.db_url)
    reachable: UowFactory = make_uow_factory(settings.db_url)
    follower.uow_factory = reachable
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=FOLLOW_LOG):
        assert follower.apply_once() == {}
        assert follower.apply_once() == {}
    assert [r.getMessage() for r in caplog.records] == ["follow: the database answers again"]
    reachable.dispose()
