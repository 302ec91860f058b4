"""The unit of work: one transaction, rollback unless committed, SQLite's write lock taken at BEGIN."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from dbfixtures import IVAN, demo_ids
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from ivr.db import migrate
from ivr.db.models import Account
from ivr.db.session import UowFactory, make_uow_factory


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
    from ivr.db.session import make_engine

    engine = make_engine("postgresql://ivr:s3cret@127.0.0.1:1/ivr")
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.url.password == "s3cret"
    finally:
        engine.dispose()
