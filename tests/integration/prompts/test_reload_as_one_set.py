"""Trees, texts and audio are taken as one set. A text edit that reordered two values was once heard
before its audio was rendered and while the tree still expected the old order: callers heard "available
minus fifty roubles, your balance two hundred and fifty" when the balance was -50. Now an edit is served
only when its tree, its texts and the audio rendered from those texts agree; until then the last good
set keeps serving, texts included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.app.bootstrap import LineApp, build_app
from ivr.config import PROJECT_ROOT, Settings, load_settings
from ivr.engine.commands import PromptRef
from ivr.testbed.demo_data import init_demo

BALANCE = PromptRef("balance_is", {"balance": "-50", "available": "250"})
OLD = "Ваш баланс {balance:money}. Доступно {available:money}."
NEW = "Доступно {available:money}. Ваш баланс {balance:money}."


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    rendered = load_settings(None).sounds
    if not any(rendered.glob("ru/operator/*.wav")):
        pytest.fail("prompts are not rendered: run `ivr prompts render` (scripts/test.sh does)")
    shutil.copytree(PROJECT_ROOT / "prompts", tmp_path / "prompts")
    shutil.copytree(rendered, tmp_path / "sounds")
    url = f"sqlite:///{tmp_path / 'ivr.sqlite3'}"
    init_demo(url)
    return load_settings(
        None,
        home=str(PROJECT_ROOT),
        database_url=url,
        var_dir=str(tmp_path / "var"),
        prompts_dir=str(tmp_path / "prompts"),
        sounds_dir=str(tmp_path / "sounds"),
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[LineApp]:
    line_app = build_app(settings, serving=True)
    yield line_app
    line_app.close()


def _edit(settings: Settings, old: str, new: str) -> None:
    path = settings.prompts / "texts" / "operator.ru.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def _render(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env.update(
        IVR_HOME=str(PROJECT_ROOT),
        IVR_PROMPTS_DIR=str(settings.prompts),
        IVR_SOUNDS_DIR=str(settings.sounds),
        IVR_VAR_DIR=str(settings.var),
        IVR_DATABASE_URL=settings.db_url,
    )
    subprocess.run(
        [sys.executable, "-m", "ivr.cli", "prompts", "render", "operator", "--no-progress"],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_a_text_edit_waits_for_its_audio_and_the_old_set_keeps_serving(
    app: LineApp, settings: Settings
) -> None:
    tree = app.trees.get("operator")
    assert app.voice.raw_text("operator", "ru", "balance_is") == OLD
    before = app.voice.files("operator", "ru", BALANCE)

    _edit(settings, OLD, NEW)  # published without rendering
    app.reload_changed()

    assert app.trees.get("operator") is tree  # refused: its audio is of the old text
    assert any(e.code == "audio" for e in app.trees.errors["operator"])
    assert app.voice.raw_text("operator", "ru", "balance_is") == OLD  # the texts of the set in service
    assert app.voice.files("operator", "ru", BALANCE) == before
    assert app.voice.text("operator", "ru", BALANCE) == (
        "Ваш баланс минус пятьдесят рублей. Доступно двести пятьдесят рублей."
    )

    _render(settings)  # support staff re-render: the set is complete now
    app.reload_changed()

    assert app.trees.get("operator") is not tree
    assert "operator" not in app.trees.errors
    assert app.voice.raw_text("operator", "ru", "balance_is") == NEW
    assert app.voice.text("operator", "ru", BALANCE) == (
        "Доступно двести пятьдесят рублей. Ваш баланс минус пятьдесят рублей."
    )


def test_a_tree_edit_whose_texts_are_missing_is_refused(app: LineApp, settings: Settings) -> None:
    tree = app.trees.get("operator")
    path = settings.prompts / "operator.yaml"
    text = path.read_text(encoding="utf-8")
    assert "      - balance_is\n" in text
    path.write_text(text.replace("      - balance_is\n", "      - balance_is_new\n", 1), encoding="utf-8")
    app.reload_changed()
    assert app.trees.get("operator") is tree
    assert any(e.code == "missing_text" for e in app.trees.errors["operator"])


def test_the_server_starts_only_with_rendered_audio(settings: Settings) -> None:
    shutil.rmtree(settings.sounds)
    settings.sounds.mkdir()
    with pytest.raises(RuntimeError, match="not rendered"):
        build_app(settings, serving=True)
    build_app(settings).close()  # the simulator needs no audio
