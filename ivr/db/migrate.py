"""Alembic driven from Python: the migrations ship inside the package (`ivr/db/migrations`)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ivr.db.session import DEFAULT_TIMEOUTS, DbTimeouts, make_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _quiet_alembic() -> None:
    # Alembic announces each of its plugins at INFO on every run: noise in the line's log.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def upgrade(url: str, revision: str = "head") -> None:
    _quiet_alembic()
    log.info("migrating database up to %s", revision)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    _quiet_alembic()
    log.info("migrating database down to %s", revision)
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(url: str, timeouts: DbTimeouts = DEFAULT_TIMEOUTS) -> str | None:
    engine = make_engine(url, timeouts=timeouts)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
