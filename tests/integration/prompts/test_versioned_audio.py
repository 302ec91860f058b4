"""A call in progress keeps the audio of the version it started with: a static piece's audio is named by
the hash of its text, so rendering a changed text writes a new file beside the old one instead of over it;
the plain name follows the newest render (the dialplan plays a few prompts by name); old files go only
after a grace period. Rendering with espeak-ng, incrementally over one full render."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.engine.commands import PromptRef
from ivr.prompts.render import MANIFEST, PRUNE_GRACE_SECONDS, check_prompts, prune_prompts, render
from ivr.prompts.voice import PIECE_FILE, PromptVoice, piece_file
from ivr.trees.texts import load_texts

WELCOME = PromptRef("welcome")
BALANCE = PromptRef("balance", {"balance": 5, "points": 2})
OLD_WELCOME = "Здравствуйте! Вы позвонили в службу поддержки."
NEW_WELCOME = "Добрый день! Вы позвонили в службу поддержки."


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, home_factory: Callable[[Path], Settings]
) -> Iterator[Settings]:
    if not shutil.which("espeak-ng") or not (shutil.which("sox") or shutil.which("ffmpeg")):
        pytest.skip("espeak-ng and sox/ffmpeg are needed (scripts/install_tts.sh)")
    settings = home_factory(tmp_path_factory.mktemp("versions"))
    report = render(settings, engine="espeak", progress=False)
    assert not report.failed, report.failed
    yield settings


@pytest.fixture
def settings(rendered: Settings, tmp_path: Path) -> Settings:
    shutil.copytree(rendered.home, tmp_path / "home")
    return Settings(home=tmp_path / "home")


def _edit(settings: Settings, old: str, new: str) -> None:
    path = settings.prompts / "texts" / "alpha.ru.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def _manifest(settings: Settings) -> dict[str, dict[str, object]]:
    return dict(json.loads((settings.sounds / MANIFEST).read_text(encoding="utf-8"))["files"])


def test_a_new_version_of_a_text_is_rendered_beside_the_old(settings: Settings) -> None:
    voice = PromptVoice(settings)
    texts = settings.prompts / "texts"
    old = voice.for_texts(load_texts(texts, "alpha"))
    old_files = old.files("alpha", "ru", WELCOME) + old.files("alpha", "ru", BALANCE)
    old_audio = [p.read_bytes() for p in old_files]

    _edit(settings, OLD_WELCOME, NEW_WELCOME)
    _edit(settings, "'Ваш баланс {balance:money}.", "'На вашем счёте {balance:money}.")
    report = render(settings, engine="espeak", progress=False)
    assert report.rendered == 2 and not report.failed  # the two changed pieces, nothing else

    new = voice.for_texts(load_texts(texts, "alpha"))
    new_files = new.files("alpha", "ru", WELCOME) + new.files("alpha", "ru", BALANCE)
    # The old set's view: the old texts and the old files, which are still there, untouched.
    assert old.text("alpha", "ru", WELCOME) == OLD_WELCOME
    assert old.files("alpha", "ru", WELCOME) + old.files("alpha", "ru", BALANCE) == old_files
    assert [p.read_bytes() for p in old_files] == old_audio
    # The new set's view: the new texts and the new files, rendered.
    assert new.text("alpha", "ru", WELCOME) == NEW_WELCOME
    assert new.text("alpha", "ru", BALANCE).startswith("На вашем счёте пять рублей.")
    assert new_files[0].name == piece_file("welcome", NEW_WELCOME) != old_files[0].name
    assert new_files[1].name == piece_file("balance.0", "На вашем счёте") != old_files[1].name
    assert all(p.is_file() for p in new_files)
    assert new_files[2:] == old_files[2:]  # the unchanged piece and the value words are shared
    # The plain names are the newest render (hard links), for the dialplan and for people.
    for path, stem in zip(new_files[:2], ("welcome", "balance.0"), strict=True):
        assert os.path.samefile(path.with_name(f"{stem}.wav"), path)
    # Both versions pass the audio check, each against its own texts.
    keys = {"ru": ["welcome", "balance"]}
    assert check_prompts(settings, "alpha", keys, voice=old) == []
    assert check_prompts(settings, "alpha", keys, voice=new) == []


def test_a_render_from_before_the_hashed_names_is_linked_not_rendered_again(settings: Settings) -> None:
    """The first render after the upgrade: the pieces under their plain names (and their manifest entries)
    become the hashed files by a hard link; no TTS runs."""
    manifest = _manifest(settings)
    for rel in list(manifest):
        match = PIECE_FILE.match(rel.rsplit("/", 1)[-1])
        if match:
            (settings.sounds / rel).unlink()  # the plain name (a hard link) keeps the audio
            manifest[f"{rel.rsplit('/', 1)[0]}/{match['stem']}.wav"] = manifest.pop(rel)
    (settings.sounds / MANIFEST).write_text(json.dumps({"version": 1, "files": manifest}), encoding="utf-8")
    keys = {"ru": ["welcome", "balance"]}
    problems = check_prompts(settings, "alpha", keys)
    assert problems and all("is older than its text" in p for p in problems)

    report = render(settings, engine="espeak", progress=False)
    assert report.rendered == 0 and report.skipped == report.planned and not report.failed
    assert check_prompts(settings, "alpha", keys) == []
    after = _manifest(settings)
    welcome = f"ru/alpha/{piece_file('welcome', OLD_WELCOME)}"
    assert after[welcome]["text"] == OLD_WELCOME and "ru/alpha/welcome.wav" not in after
    assert os.path.samefile(settings.sounds / welcome, settings.sounds / "ru" / "alpha" / "welcome.wav")


def test_unused_audio_is_pruned_only_after_the_grace_period(settings: Settings) -> None:
    old = settings.sounds / "ru" / "alpha" / piece_file("welcome", OLD_WELCOME)
    new = settings.sounds / "ru" / "alpha" / piece_file("welcome", NEW_WELCOME)
    plain = settings.sounds / "ru" / "alpha" / "welcome.wav"
    old_rel, new_rel = (f"ru/alpha/{p.name}" for p in (old, new))

    _edit(settings, OLD_WELCOME, NEW_WELCOME)
    report = render(settings, engine="espeak", progress=False)  # render prunes: marks the old file
    assert report.rendered == 1 and report.pruned == 0
    assert old.is_file() and new.is_file() and os.path.samefile(plain, new)
    marked = _manifest(settings)[old_rel]["unused_since"]
    assert isinstance(marked, float) and abs(marked - time.time()) < 60

    later = time.time() + PRUNE_GRACE_SECONDS / 2
    assert prune_prompts(settings, now=later).waiting == [old_rel]
    assert old.is_file()  # a call that started on the old version is still within the grace period

    _edit(settings, NEW_WELCOME, OLD_WELCOME)  # rolled back: the old file is used again, the new one not
    result = prune_prompts(settings, now=later)
    assert result.deleted == [] and result.waiting == [new_rel]
    assert "unused_since" not in _manifest(settings)[old_rel]

    gone = prune_prompts(settings, now=later + PRUNE_GRACE_SECONDS + 1)  # (+1: the mark is to the ms)
    assert gone.deleted == [new_rel] and gone.waiting == []
    assert not new.exists() and new_rel not in _manifest(settings)
    assert old.is_file() and len(list((settings.sounds / "ru" / "words").glob("*.wav"))) > 100
    # The plain name still plays the newest render (the unlinked name's audio lives on in it) until the
    # next render points it at the current text again.
    assert plain.is_file()
    render(settings, engine="espeak", progress=False)
    assert os.path.samefile(plain, old)
