"""Alembic migrations on SQLite and PostgreSQL: upgrade from empty, the schema matches the models,
downgrade/upgrade round trip, and the demo seed is idempotent."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from ivr.db import migrate
from ivr.db.models import Account, Base, Subscriber
from ivr.db.session import make_engine, make_uow_factory
from ivr.testbed.demo_data import DEMO, init_demo

APP_TABLES = set(Base.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_from_empty_matches_the_models(empty_db_url: str) -> None:
    assert _tables(empty_db_url) == set()
    migrate.upgrade(empty_db_url)
    assert _tables(empty_db_url) == APP_TABLES
    assert migrate.current_revision(empty_db_url) == migrate.head_revision()
    assert _diff(empty_db_url) == []


def test_downgrade_upgrade_round_trip(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "base")
    assert _tables(empty_db_url) == set()
    assert migrate.current_revision(empty_db_url) is None
    migrate.upgrade(empty_db_url)
    assert _tables(empty_db_url) == APP_TABLES
    assert _diff(empty_db_url) == []


def test_init_demo_is_idempotent(empty_db_url: str) -> None:
    assert init_demo(empty_db_url) == len(DEMO)
    assert init_demo(empty_db_url) == 0
    factory = make_uow_factory(empty_db_url)
    try:
        with factory() as uow:
            accounts = uow.session.scalar(select(func.count(Account.id)))
            subscribers = uow.session.scalar(select(func.count(Subscriber.id)))
    finally:
        factory.dispose()
    assert accounts == len(DEMO)
    assert subscribers == sum(len(a.numbers) for a in DEMO)
