"""`ivr db ...` through the real CLI entry point, on a SQLite file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from ivr.cli import main
from ivr.db import migrate


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main` sets up logging on the root logger; take its handlers away again after each test."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_ivr", False):
            root.removeHandler(handler)
    root.setLevel(level)


def test_db_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVR_HOME", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    assert main(["--database-url", url, "db", "migrate"]) == 0
    head = migrate.head_revision()
    assert f"schema at {head}" in capsys.readouterr().out
    assert main(["--database-url", url, "db", "seed"]) == 0
    assert "12 demo accounts created" in capsys.readouterr().out
    assert main(["--database-url", url, "db", "init"]) == 0
    assert "0 demo accounts created" in capsys.readouterr().out
    assert main(["--database-url", url, "db", "subscribers"]) == 0
    listing = capsys.readouterr().out
    assert "79161234567" in listing and "view_only" in listing and "blocked" in listing
    assert "1234" not in listing.replace("79031234567", "").replace("79161234567", "")
    assert main(["--database-url", url, "db", "downgrade"]) == 0
    previous = ScriptDirectory.from_config(migrate.alembic_config(url)).get_revision(head).down_revision
    assert f"schema at {previous}" in capsys.readouterr().out  # one step down


def test_db_init_default_url_under_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_HOME", str(tmp_path))
    monkeypatch.delenv("IVR_DATABASE_URL", raising=False)
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    assert main(["db", "init"]) == 0
    assert (tmp_path / "var" / "ivr.sqlite3").is_file()


def test_db_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_HOME", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    assert main(["--database-url", url, "db", "init"]) == 0
    from ivr.app.actions import ActionContext, invoke
    from ivr.db.session import make_uow_factory

    factory = make_uow_factory(url)
    try:
        ctx = ActionContext("c1", "operator", "ru", {"subscriber_id": 1}, factory, "c1:reset:1")
        assert invoke("password.reset", {}, ctx).status == "ok"
    finally:
        factory.dispose()
    capsys.readouterr()
    assert main(["--database-url", url, "db", "jobs"]) == 0
    assert "1 SMS and 0 e-mails sent" in capsys.readouterr().out
    outbox = (tmp_path / "var" / "sms" / "outbox.log").read_text(encoding="utf-8")
    assert "79161234567" in outbox and "password_reset" in outbox
