"""Engines and the unit of work: one transaction per operation.

`make_uow_factory(url)` builds an engine once and returns a `UowFactory`; each call of the factory gives
a fresh `UnitOfWork` (a session and one transaction). The server and the simulator build one factory at
start and put it into every `ActionContext`.

```python
factory = make_uow_factory(settings.db_url)
with factory(write=True) as uow:
    result = services.bonus.redeem(uow, ...)
    uow.commit()               # leaving the block without commit rolls everything back
```

Locking: on PostgreSQL, services lock rows with `uow.locked(stmt)` (`SELECT ... FOR UPDATE`; work queues that
several server nodes drain use `uow.locked(stmt, skip_locked=True)`, `FOR UPDATE SKIP LOCKED`). SQLite has no
row locks, so a write unit of work starts with `BEGIN IMMEDIATE`, taking the database's write lock at the
start; concurrent writers queue on the busy timeout instead of failing on a stale read. Read units of work
start a deferred transaction and, with WAL, never wait for writers.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import Engine, Executable, Select, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
S = TypeVar("S", bound="Select[Any]")


def utcnow() -> dt.datetime:
    """Naive UTC now: the database stores naive UTC times."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class DbTimeouts:
    """How long a database may make a caller's operation wait, in seconds (None: no limit).

    connect: reaching the server, including its reply to the start-up handshake (a port that accepts
    but never answers once held `ivr serve` at start for minutes). lock: waiting for a row lock
    (PostgreSQL `lock_timeout`) or SQLite's write lock (its busy timeout, which was 60 s). statement: one
    statement (PostgreSQL `statement_timeout`; on SQLite a progress handler interrupts it). A frozen
    server enforces none of these; the session's action time limit covers the caller then
    (docs/operations.md)."""

    connect: float | None = 5.0
    lock: float | None = 5.0
    statement: float | None = None


DEFAULT_TIMEOUTS = DbTimeouts()


def make_engine(url: str, *, timeouts: DbTimeouts = DEFAULT_TIMEOUTS, **kwargs: Any) -> Engine:
    """An engine with the project's SQLite setup (WAL, foreign keys, busy timeout, explicit BEGIN) and
    the connect, lock and statement timeouts of `timeouts` on SQLite and PostgreSQL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        # The project ships psycopg 3; SQLAlchemy's default PostgreSQL driver would be psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
        url = parsed.render_as_string(hide_password=False)
    # Statement parameters may hold card numbers or hashes: keep them out of exception messages (logs).
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", timeouts.lock if timeouts.lock is not None else 3600.0)
        connect_args.setdefault("check_same_thread", False)
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 100)
        kwargs.setdefault("pool_timeout", 120)
        database = parsed.database or ""
        if database in ("", ":memory:"):
            # Each pooled connection would be a different empty database; keep one.
            kwargs.pop("pool_size")
            kwargs.pop("max_overflow")
            kwargs.pop("pool_timeout")
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _setup_sqlite(
            engine, file_backed=database not in ("", ":memory:"), statement_timeout=timeouts.statement
        )
        return engine
    if parsed.get_backend_name() == "postgresql":
        connect_args = dict(kwargs.pop("connect_args", {}))
        if timeouts.connect is not None:
            connect_args.setdefault("connect_timeout", max(1, round(timeouts.connect)))
        options = [
            f"-c {name}={int(seconds * 1000)}"
            for name, seconds in (("lock_timeout", timeouts.lock), ("statement_timeout", timeouts.statement))
            if seconds is not None
        ]
        if options:
            connect_args.setdefault("options", " ".join(options))
        kwargs["connect_args"] = connect_args
    if kwargs.get("poolclass") is None:
        kwargs.pop("poolclass", None)
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 40)
    return create_engine(url, **kwargs)


def _setup_sqlite(engine: Engine, *, file_backed: bool, statement_timeout: float | None = None) -> None:
    if statement_timeout is not None:
        _sqlite_statement_timeout(engine, statement_timeout)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling defers it badly).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        if file_backed:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _sqlite_statement_timeout(engine: Engine, seconds: float) -> None:
    """SQLite has no statement timeout of its own: a progress handler (called every few thousand virtual
    machine steps) interrupts a statement that has run longer than `seconds` (OperationalError
    "interrupted"). Waiting for the write lock is the busy timeout's business, not this one's."""
    deadlines: dict[int, float] = {}

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        key = id(dbapi_conn)
        dbapi_conn.set_progress_handler(lambda: time.monotonic() > deadlines.get(key, float("inf")), 10_000)

    @event.listens_for(engine, "before_cursor_execute")
    def _started(conn: Any, _cursor: Any, _statement: Any, _params: Any, _context: Any, _many: Any) -> None:
        deadlines[id(conn.connection.dbapi_connection)] = time.monotonic() + seconds

    @event.listens_for(engine, "after_cursor_execute")
    def _finished(conn: Any, _cursor: Any, _statement: Any, _params: Any, _context: Any, _many: Any) -> None:
        deadlines.pop(id(conn.connection.dbapi_connection), None)


class UnitOfWork:
    """One session, one transaction. Use as a context manager; `commit()` inside, or it rolls back."""

    def __init__(
        self, engine: Engine, *, write: bool, clock: Clock, write_bind: Engine | None = None
    ) -> None:
        self.dialect = engine.dialect.name
        self.write = write
        self._clock = clock
        bind = engine
        if self.dialect == "sqlite" and write:
            bind = write_bind or engine.execution_options(sqlite_begin="IMMEDIATE")
        self.session = Session(bind=bind, expire_on_commit=False, autoflush=True)
        self._done = False

    def __enter__(self) -> UnitOfWork:
        # Start the transaction now so SQLite's write lock is taken before anything is read.
        self.session.connection()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._done:
                self.session.rollback()
        finally:
            self.session.close()

    def commit(self) -> None:
        self.session.commit()
        self._done = True

    def rollback(self) -> None:
        self.session.rollback()
        self._done = True

    def rows(self, statement: Executable, **params: Any) -> Sequence[Any]:
        """Plain rows of a column SELECT built once at import (with bindparam()s for `params`), run on this
        unit's connection, past the ORM. For the line's hottest reads: building a statement on every call
        and loading ORM objects cost about four times the CPU of this (measured in docs/benchmarks.md).
        Pending ORM changes are flushed first, so the rows see them."""
        if self.session.new or self.session.dirty or self.session.deleted:
            self.session.flush()
        return self.session.connection().execute(statement, params).all()

    def now(self) -> dt.datetime:
        return self._clock()

    def today(self) -> dt.date:
        return self._clock().date()

    def locked(self, stmt: S, *, skip_locked: bool = False) -> S:
        """`stmt` as a locking read: FOR UPDATE where the database has row locks (SQLite is already
        serialised by BEGIN IMMEDIATE), and always refreshing objects already in the session.

        `skip_locked`: FOR UPDATE SKIP LOCKED, for queues that several servers take work from (the
        outboxes, callbacks): rows another transaction holds are left out instead of waited for, so two
        nodes' workers take different rows at once instead of one queueing behind the other. Only for
        reads whose caller is content with fewer rows than exist."""
        stmt = stmt.execution_options(populate_existing=True)
        if self.dialect != "sqlite":
            stmt = stmt.with_for_update(skip_locked=skip_locked)
        return stmt


class UowFactory:
    """Makes units of work over one engine. `factory(write=True)` for operations that change state."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self._write_bind = engine.execution_options(sqlite_begin="IMMEDIATE")

    def __call__(self, write: bool = False) -> UnitOfWork:
        return UnitOfWork(self.engine, write=write, clock=self.clock, write_bind=self._write_bind)

    def dispose(self) -> None:
        self.engine.dispose()


def make_uow_factory(
    url: str, *, clock: Clock = utcnow, timeouts: DbTimeouts = DEFAULT_TIMEOUTS, **engine_kwargs: Any
) -> UowFactory:
    """The one way the server, the simulator and the tools reach the database."""
    return UowFactory(make_engine(url, timeouts=timeouts, **engine_kwargs), clock=clock)
