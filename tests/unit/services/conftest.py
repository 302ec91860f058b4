"""Service tests run on a real database: SQLite and (marked `postgres`) a throwaway PostgreSQL server."""

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # tests/, for dbfixtures

from dbfixtures import *  # noqa: F403
