"""Shared by the telephony integration tests that run whole calls: a demo database per test module (each
module's PIN failures and changes stay its own) and settings that use it with the rendered prompts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.config import PROJECT_ROOT, Settings, load_settings
from ivr.testbed.demo_data import init_demo


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('demo-db') / 'ivr.sqlite3'}"
    init_demo(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, demo_db: str) -> Settings:
    project = load_settings()
    return Settings(
        home=PROJECT_ROOT, var_dir=tmp_path / "var", database_url=demo_db, sounds_dir=project.sounds
    )
