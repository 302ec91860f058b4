"""The staff console over HTTP (Starlette's TestClient): a copy of prompts/, a fresh database and
accounts of every role."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import PASSWORD
from starlette.testclient import TestClient

from ivr.config import PROJECT_ROOT, Settings
from ivr.db.migrate import upgrade
from ivr.db.session import make_uow_factory
from ivr.services.staff import add_staff
from ivr.web.app import create_app

ROLES = ("viewer", "editor", "publisher", "admin")


@pytest.fixture
def console_settings(tmp_path: Path) -> Settings:
    prompts = tmp_path / "prompts"
    shutil.copytree(PROJECT_ROOT / "prompts", prompts)
    url = f"sqlite:///{tmp_path / 'console.sqlite3'}"
    upgrade(url)
    factory = make_uow_factory(url)
    with factory(write=True) as uow:
        for role in ROLES:
            add_staff(uow, role, PASSWORD, role)
        add_staff(uow, "editor2", PASSWORD, "editor")
        uow.commit()
    factory.dispose()
    return Settings(
        home=PROJECT_ROOT,
        var_dir=tmp_path / "var",
        database_url=url,
        prompts_dir=prompts,
        sounds_dir=tmp_path / "sounds",
        tts_engine="espeak",
        console_secret="test-secret-" + "x" * 40,
    )


@pytest.fixture
def console(console_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(console_settings), follow_redirects=False) as client:
        yield client
