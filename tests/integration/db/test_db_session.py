"""The unit of work: one transaction, rollback unless committed, SQLite's write lock taken at BEGIN."""

from __future__ import annotations

import socket
from decimal import Decimal
from pathlib import Path

import pytest
from dbfixtures import IVAN, demo_ids
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from ivr.db import migrate
from ivr.db.models import Account
from ivr.db.session import DbTimeouts, UowFactory, make_engine, make_uow_factory


def _balance(factory: UowFactory, account_id: int) -> Decimal:
    with factory() as uow:
        return uow.session.scalars(select(Account.balance).where(Account.id == account_id)).one()


def test_changes_without_commit_roll_back(uow_factory: UowFactory) -> None:
    _, account_id = demo_ids(uow_factory, IVAN)
    with uow_factory(write=True) as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        account.balance = Decimal("1.00")
        uow.session.flush()
    assert _balance(uow_factory, account_id) == Decimal("523.40")
    with pytest.raises(RuntimeError), uow_factory(write=True) as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        account.balance = Decimal("2.00")
        uow.session.flush()
        raise RuntimeError("caller hung up")
    assert _balance(uow_factory, account_id) == Decimal("523.40")


def test_money_is_decimal(uow_factory: UowFactory) -> None:
    _, account_id = demo_ids(uow_factory, IVAN)
    value = _balance(uow_factory, account_id)
    assert isinstance(value, Decimal) and value == Decimal("523.40")


def test_sqlite_write_unit_takes_the_write_lock_at_begin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lock.sqlite3'}"
    migrate.upgrade(url)
    waiting = make_uow_factory(url, connect_args={"timeout": 0.05})
    holder = make_uow_factory(url)
    try:
        with holder(write=True):
            # a reader is not blocked by the writer (WAL)...
            with waiting() as reader:
                assert reader.session.scalars(select(Account.id)).first() is None
            # ...a second writer is, before it has read anything
            with pytest.raises(OperationalError, match="locked"), waiting(write=True):
                pass
        with waiting(write=True) as uow:  # free again
            uow.commit()
    finally:
        waiting.dispose()
        holder.dispose()


def test_plain_postgresql_urls_use_psycopg3() -> None:
    engine = make_engine("postgresql://ivr:s3cret@127.0.0.1:1/ivr")
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.url.password == "s3cret"
    finally:
        engine.dispose()


def test_a_held_lock_fails_the_operation_instead_of_waiting(db_url: str) -> None:
    """A write lock held elsewhere (a stuck transaction, a long migration) ends the operation after the
    lock timeout, on SQLite (its busy timeout, once 60 s) and on PostgreSQL (lock_timeout)."""
    timeouts = DbTimeouts(lock=0.3)
    holder = make_uow_factory(db_url)
    waiting = make_uow_factory(db_url, timeouts=timeouts)
    try:
        _, account_id = demo_ids(holder, IVAN)
        with holder(write=True) as held:
            held.session.scalars(held.locked(select(Account).where(Account.id == account_id))).one()
            with pytest.raises(OperationalError), waiting(write=True) as uow:
                uow.session.scalars(uow.locked(select(Account).where(Account.id == account_id))).one()
    finally:
        waiting.dispose()
        holder.dispose()


@pytest.mark.postgres
def test_postgresql_statement_timeout(request: pytest.FixtureRequest) -> None:
    cluster = request.getfixturevalue("pg_cluster")
    factory = make_uow_factory(cluster.url(), timeouts=DbTimeouts(statement=0.2))
    try:
        with pytest.raises(OperationalError, match="statement timeout"), factory() as uow:
            uow.session.execute(text("SELECT pg_sleep(5)"))
    finally:
        factory.dispose()


# A statement that would run for minutes on SQLite: a recursive count to a billion.
ENDLESS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
    "SELECT count(*) FROM n"
)


def test_sqlite_statement_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'slow.sqlite3'}"
    factory = make_uow_factory(url, timeouts=DbTimeouts(statement=0.2))
    try:
        with pytest.raises(OperationalError, match="interrupted"), factory() as uow:
            uow.session.execute(text(ENDLESS))
        with factory() as uow:  # the connection is fine afterwards, and quick statements run
            assert uow.session.execute(text("SELECT 1")).scalar() == 1
    finally:
        factory.dispose()


def test_a_server_that_accepts_but_never_answers_is_given_up(tmp_path: Path) -> None:
    """A port that accepts connections and says nothing (a frozen or half-dead server) once held
    `ivr serve` at start for minutes: the connect timeout ends the attempt."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        engine = make_engine(f"postgresql://ivr@127.0.0.1:{port}/ivr", timeouts=DbTimeouts(connect=1.0))
        try:
            with pytest.raises(OperationalError), engine.connect():
                pass
        finally:
            engine.dispose()
