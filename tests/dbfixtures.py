"""Database fixtures shared by every test that needs the real database: SQLite files and a real, throwaway
PostgreSQL server started with initdb/pg_ctl on a free loopback port.

Use from a conftest.py (tests/ is not a package, so put it on the path first):

    import sys
    from pathlib import Path
from typing import TypeVar
    sys.path.append(str(Path(__file__).resolve().parents[N]))   # N: up to tests/
    from dbfixtures import *  # noqa: F403  (db_kind, db_url, clock, uow_factory, empty_db_url, ...)

Fixtures:
- `db_kind`: "sqlite" and "postgresql" (the latter marked `postgres`); everything below runs on both.
- `db_url`: a fresh database migrated to head and seeded with the demo data (a copy of a template made
  once per session, so each test starts from the same state in milliseconds).
- `empty_db_url`: a fresh empty database (for migration tests).
- `clock`: a `TestClock` (naive UTC, starts at the real now; `advance(days=...)` moves it).
- `uow_factory`: `ivr.db.session.UowFactory` over `db_url` with `clock`.
- `pg_cluster`: the running PostgreSQL server (started once per session, stopped at the end).

The PostgreSQL binaries are looked up in /usr/lib/postgresql/*/bin (newest first) or PG_BIN. As root, the
server runs as the `postgres` user (initdb refuses root); otherwise as the current user. Without binaries
the postgres tests are skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Connection
from sqlalchemy.pool import NullPool

from ivr.db.session import UowFactory, make_engine, make_uow_factory, utcnow

R = TypeVar("R")

__all__ = [
    "TestClock",
    "clock",
    "db_kind",
    "db_url",
    "demo_ids",
    "empty_db_url",
    "pg_cluster",
    "run_op",
    "uow_factory",
]


class TestClock:
    """A clock the test moves by hand (naive UTC)."""

    __test__ = False  # not a test class

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


# --- PostgreSQL ----------------------------------------------------------------------------------------


def find_pg_bin() -> Path | None:
    explicit = os.environ.get("PG_BIN")
    candidates = [Path(explicit)] if explicit else []

    def version(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return 0.0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for path in candidates:
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    bin_dir: Path
    root: Path
    port: int
    as_user: str | None  # run the binaries as this user (root cannot run PostgreSQL)
    _admin: Connection | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        return [*prefix, *args]

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.root, user=self.as_user)
        subprocess.run(
            self._cmd(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        subprocess.run(
            self._cmd(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin.engine.dispose()
            self._admin = None
        if self.data.exists():
            subprocess.run(
                self._cmd(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement on the maintenance database (autocommit, one kept connection)."""
        if self._admin is None:
            self._admin = make_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool).connect()
        self._admin.exec_driver_sql(sql)


_CLUSTER: PgCluster | None = None
_COUNTER = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> PgCluster:
    global _CLUSTER
    if _CLUSTER is None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            pytest.skip("PostgreSQL binaries not found (apt-get install postgresql, or set PG_BIN)")
        as_user = "postgres" if os.geteuid() == 0 else None
        if as_user is not None:
            try:
                pwd.getpwnam(as_user)
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run the server as")
        root = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
        cluster = PgCluster(bin_dir=bin_dir, root=root, port=_free_port(), as_user=as_user)
        try:
            cluster.start()
        except subprocess.CalledProcessError as exc:
            cluster.stop()
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr!r}") from exc
        _CLUSTER = cluster
        request.config.add_cleanup(_stop_cluster)
    return _CLUSTER


def _stop_cluster() -> None:
    global _CLUSTER
    if _CLUSTER is not None:
        _CLUSTER.stop()
        _CLUSTER = None


# --- templates and per-test databases ------------------------------------------------------------------


@dataclass
class Templates:
    sqlite_file: Path | None = None
    pg_template: str | None = None


_TEMPLATES = Templates()


def _seed_into(url: str) -> None:
    from ivr.testbed.demo_data import init_demo

    init_demo(url)


def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _TEMPLATES.sqlite_file is None or not _TEMPLATES.sqlite_file.exists():
        path = tmp_path_factory.mktemp("sqlite-template") / "seeded.sqlite3"
        _seed_into(f"sqlite:///{path}")
        _TEMPLATES.sqlite_file = path
    return _TEMPLATES.sqlite_file


def _pg_template(cluster: PgCluster) -> str:
    if _TEMPLATES.pg_template is None:
        cluster.admin("CREATE DATABASE ivr_seeded")
        _seed_into(cluster.url("ivr_seeded"))
        _TEMPLATES.pg_template = "ivr_seeded"
    return _TEMPLATES.pg_template


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _pg_database(request: pytest.FixtureRequest, template: str | None) -> Iterator[str]:
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"ivr_t{os.getpid()}_{next(_COUNTER)}"
    if template:
        cluster.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    else:
        cluster.admin(f"CREATE DATABASE {name}")
    try:
        yield cluster.url(name)
    finally:
        cluster.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url(
    db_kind: str, request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database at the newest schema with the demo data."""
    if db_kind == "sqlite":
        path = tmp_path / "ivr.sqlite3"
        shutil.copyfile(_sqlite_template(tmp_path_factory), path)
        yield f"sqlite:///{path}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    yield from _pg_database(request, _pg_template(cluster))


@pytest.fixture
def empty_db_url(db_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database (no tables)."""
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    yield from _pg_database(request, None)


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def uow_factory(db_url: str, clock: TestClock) -> Iterator[UowFactory]:
    factory = make_uow_factory(db_url, clock=clock)
    try:
        yield factory
    finally:
        factory.dispose()


# --- helpers for tests ---------------------------------------------------------------------------------


def run_op(factory: UowFactory, fn: Callable[..., R], *args: object, **kwargs: object) -> R:
    """Run one service operation in its own committed write transaction (like an action does)."""
    with factory(write=True) as uow:
        result = fn(uow, *args, **kwargs)
        uow.commit()
    return result


def demo_ids(factory: UowFactory, msisdn: str) -> tuple[int, int]:
    """(subscriber_id, account_id) of a demo number (docs/demo-subscribers.md)."""
    from sqlalchemy import select

    from ivr.db.models import Subscriber

    with factory() as uow:
        sub = uow.session.scalars(select(Subscriber).where(Subscriber.msisdn == msisdn)).one()
        return sub.id, sub.account_id


# Demo numbers (docs/demo-subscribers.md).
IVAN = "79161234567"  # positive balance, options, subscriptions, 1250 points (350 expire in 10 days)
MARIA = "79161110001"  # -123.45, promised payment possible, no web account
OLEG = "79161110002"  # trust credit on
ELENA = "79161110003"  # roaming, trust credit eligible
SERGEY = "79161110004"  # number blocked
NATALIA = "79161110005"  # 25 000 points
PAVEL = "79161110006"  # no PIN, young account
ANDREY = "79161110007"  # closed
CORP_ADMIN = "79262220001"  # manage_account
CORP_VIEW = "79262220002"  # view_only
CORP_OWN = "79262220003"  # manage_own
ANNA = "79031234567"  # loyalty: 3 cards (one blocked), 3400 points
TATIANA = "79031110001"  # loyalty: 5 cards, 150 points
MIKHAIL = "79031110002"  # loyalty: no cards, not enrolled
