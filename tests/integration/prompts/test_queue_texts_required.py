"""Every line can hand a caller to an operator queue, so the server takes a set only with the queue
dialog's texts in every language it offers (and the callback offer's while callbacks are on): a missing one
was silence at the moment a caller asked for help."""

from __future__ import annotations

import shutil
from pathlib import Path

from ivr.app.actions import catalog
from ivr.app.bootstrap import audio_check
from ivr.config import PROJECT_ROOT, Settings, load_settings
from ivr.trees.loader import load_line
from ivr.web.texts_edit import texts_of


def without(prompts: Path, key: str) -> None:
    path = prompts / "texts" / "common.en.yaml"
    kept = [row for row in path.read_text(encoding="utf-8").splitlines() if not row.startswith(f"{key}:")]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    assert key not in texts_of(path.read_text(encoding="utf-8"))


def problems(tmp_path: Path, *, callbacks: bool) -> list[str]:
    settings = Settings(
        home=PROJECT_ROOT,
        prompts_dir=tmp_path / "prompts",
        sounds_dir=load_settings().sounds,
        callbacks=callbacks,
    )
    tree, texts = load_line(settings.prompts / "operator.yaml", catalog())
    return audio_check(settings)(tree, texts)


def test_a_set_without_a_queue_text_is_refused(tmp_path: Path) -> None:
    shutil.copytree(PROJECT_ROOT / "prompts", tmp_path / "prompts")
    without(tmp_path / "prompts", "queue_position")
    found = [p for p in problems(tmp_path, callbacks=False) if "queue_position" in p]
    assert found and "operator/en" in found[0] and "has no text" in found[0], found


def test_the_callback_texts_are_required_only_while_callbacks_are_on(tmp_path: Path) -> None:
    shutil.copytree(PROJECT_ROOT / "prompts", tmp_path / "prompts")
    without(tmp_path / "prompts", "callback_offer")
    assert any("'callback_offer'" in p for p in problems(tmp_path, callbacks=True))
    assert not any("'callback_offer'" in p for p in problems(tmp_path, callbacks=False))
