"""The line refuses to start on a database whose schema does not match the code (every action would
fail mid-call), says what to run, and starts when the database is merely unreachable."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.app.bootstrap import SchemaOutOfDate, build_app, check_schema
from ivr.cli import main
from ivr.config import load_settings
from ivr.db.migrate import head_revision, upgrade


@pytest.fixture(autouse=True)
def _cli_logging_handlers() -> Iterator[None]:
    """`ivr.cli.main` puts its handlers on the root logger; an earlier in-process CLI test may have left one
    on a stream pytest has closed since ("--- Logging error ---" in stderr). Take them away, closed (a
    file handler left open is a ResourceWarning, an error here), before and after each test."""

    def drop() -> None:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "_ivr", False):
                root.removeHandler(handler)
                handler.close()

    level = logging.getLogger().level
    drop()
    yield
    drop()
    logging.getLogger().setLevel(level)


def _db_at(tmp_path: Path, revision: str) -> str:
    url = f"sqlite:///{tmp_path / 'ivr.sqlite3'}"
    upgrade(url, revision)
    return url


def test_schema_behind_the_code_is_refused_with_the_fix(tmp_path: Path) -> None:
    url = _db_at(tmp_path, "0001")
    assert head_revision() != "0001"
    with pytest.raises(SchemaOutOfDate, match=r"at 0001, this version needs .*ivr db migrate"):
        check_schema(url)


def test_empty_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaOutOfDate, match="at nothing"):
        check_schema(f"sqlite:///{tmp_path / 'empty.sqlite3'}")


def test_database_at_head_starts_the_line(tmp_path: Path) -> None:
    url = _db_at(tmp_path, "head")
    check_schema(url)
    app = build_app(load_settings(database_url=url, var_dir=str(tmp_path)))
    try:
        assert "operator" in app.trees.lines()
    finally:
        app.close()


def test_unreachable_database_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://nobody@127.0.0.1:{port}/ivr?connect_timeout=2"
    with caplog.at_level(logging.WARNING, logger="ivr.app.bootstrap"):
        check_schema(url)
    assert "not reachable" in caplog.text


def test_cli_says_what_to_run_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _db_at(tmp_path, "0001")
    code = main(["--database-url", url, "serve"])
    err = capsys.readouterr().err
    assert code == 2
    assert "ivr db migrate" in err and "Traceback" not in err
