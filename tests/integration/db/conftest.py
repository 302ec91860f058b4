"""Database integration tests (migrations, concurrency, outbox) on SQLite and a real PostgreSQL server."""

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # tests/, for dbfixtures

# Several server nodes over one database (tests/integration/db/test_multinode_*.py): two engines, two pools,
# as two processes would have them.
from collections.abc import Iterator

import pytest
from dbfixtures import *  # noqa: F403
from multinode import Nodes

from ivr.db.session import make_uow_factory


@pytest.fixture
def nodes(db_url: str, clock: TestClock) -> Iterator[Nodes]:  # noqa: F405
    """Two nodes over one database: two engines, two pools."""
    a = make_uow_factory(db_url, clock=clock)
    b = make_uow_factory(db_url, clock=clock)
    try:
        yield a, b
    finally:
        a.dispose()
        b.dispose()
