"""A recording made by a person replaces the synthesised audio of a text without placeholders: the view of
a set with the recording names the recording's file (named by the text *and* the recording), the view of a
set without it the text's; the text said stays the text. No audio is decoded here."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.engine.commands import PromptRef
from ivr.prompts.render import check_all, plan_prompts
from ivr.prompts.voice import PIECE_FILE, PromptVoice, parse_template, piece_file, text_hash
from ivr.trees.texts import load_texts

HELLO = "Здравствуйте!"
TAKE_1 = b"RIFF....WAVE first take"
TAKE_2 = b"RIFF....WAVE second take"


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    texts = tmp_path / "prompts" / "texts"
    texts.mkdir(parents=True)
    (texts / "common.ru.yaml").write_text("goodbye: До свидания!\n", encoding="utf-8")
    (texts / "demo.ru.yaml").write_text(
        f"hello: {HELLO}\nbalance: 'Ваш баланс {{balance:money}}.'\n", encoding="utf-8"
    )
    return Settings(home=tmp_path)


def record(settings: Settings, source: str, key: str, data: bytes, lang: str = "ru") -> Path:
    path = settings.prompts / "recordings" / source / lang / f"{key}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def folder(settings: Settings, source: str = "demo") -> Path:
    return settings.sounds.resolve() / "ru" / source


def test_the_name_of_a_recorded_piece_differs_from_the_synthesised_and_other_recordings() -> None:
    synthesised, first, second = (text_hash(HELLO, r) for r in ("", sha1(TAKE_1), sha1(TAKE_2)))
    assert len({synthesised, first, second}) == 3
    assert synthesised == text_hash(HELLO) == hashlib.sha1(HELLO.encode()).hexdigest()[:10]
    assert text_hash("Привет!", sha1(TAKE_1)) != first  # the same recording for another text
    assert PIECE_FILE.match(piece_file("hello", HELLO, sha1(TAKE_1)))  # pruned and checked like any piece


def test_a_catalog_with_a_recording_resolves_to_the_recorded_file(settings: Settings) -> None:
    voice = PromptVoice(settings)
    texts = settings.prompts / "texts"
    without = voice.for_texts(load_texts(texts, "demo"))
    record(settings, "demo", "hello", TAKE_1)
    with_recording = voice.for_texts(load_texts(texts, "demo"))
    hello = PromptRef("hello")

    assert without.files("demo", "ru", hello) == [folder(settings) / piece_file("hello", HELLO)]
    assert with_recording.files("demo", "ru", hello) == [
        folder(settings) / piece_file("hello", HELLO, sha1(TAKE_1))
    ]
    assert with_recording.stream_names("demo", "ru", hello) == [
        str(folder(settings) / f"hello.{text_hash(HELLO, sha1(TAKE_1))}")
    ]
    # What is said, for logs and the simulator, is the text either way.
    assert with_recording.text("demo", "ru", hello) == without.text("demo", "ru", hello) == HELLO
    assert with_recording.recording("demo", "ru", "hello") == sha1(TAKE_1)
    assert with_recording.recording_path("demo", "ru", "hello") == (
        settings.prompts / "recordings" / "demo" / "ru" / "hello.wav"
    )
    assert without.recording("demo", "ru", "hello") is None


def test_the_voice_reads_recordings_with_the_texts_and_notices_a_new_one(settings: Settings) -> None:
    voice = PromptVoice(settings)
    hello = PromptRef("hello")
    assert voice.files("demo", "ru", hello)[0].name == piece_file("hello", HELLO)
    assert voice.reload_if_changed() is False
    path = record(settings, "demo", "hello", TAKE_1)
    assert voice.reload_if_changed() is True
    assert voice.files("demo", "ru", hello)[0].name == piece_file("hello", HELLO, sha1(TAKE_1))
    path.write_bytes(TAKE_2)
    later = time.time() + 5
    os.utime(path, (later, later))
    assert voice.reload_if_changed() is True
    assert voice.files("demo", "ru", hello)[0].name == piece_file("hello", HELLO, sha1(TAKE_2))
    path.unlink()
    assert voice.reload_if_changed() is True
    assert voice.files("demo", "ru", hello)[0].name == piece_file("hello", HELLO)


def test_use_texts_takes_the_recordings_of_the_set(settings: Settings) -> None:
    voice = PromptVoice(settings)
    record(settings, "demo", "hello", TAKE_1)
    catalog = load_texts(settings.prompts / "texts", "demo")
    voice.use_texts(catalog)  # the server: the voice speaks the sets in service, not the files
    assert voice.recording("demo", "ru", "hello") == sha1(TAKE_1)
    (settings.prompts / "recordings" / "demo" / "ru" / "hello.wav").unlink()
    voice.use_texts(load_texts(settings.prompts / "texts", "demo"))
    assert voice.recording("demo", "ru", "hello") is None


def test_a_common_text_may_be_recorded(settings: Settings) -> None:
    record(settings, "common", "goodbye", TAKE_1)
    view = PromptVoice(settings).for_texts(load_texts(settings.prompts / "texts", "demo"))
    assert view.files("demo", "ru", PromptRef("goodbye")) == [
        folder(settings, "common") / piece_file("goodbye", "До свидания!", sha1(TAKE_1))
    ]


def test_a_recording_of_a_text_with_placeholders_is_not_played(settings: Settings) -> None:
    """The tree check refuses such a set; a voice reading the files as they are still never plays it."""
    record(settings, "demo", "balance", TAKE_1)
    voice = PromptVoice(settings)
    files = voice.files("demo", "ru", PromptRef("balance", {"balance": 5}))
    assert files[0].name == piece_file("balance.0", "Ваш баланс")
    assert (
        parse_template("balance", "Ваш баланс {balance:money}.", "ru", "demo", sha1(TAKE_1)).recording == ""
    )
    problems = check_all(settings)
    assert any(
        "recordings/demo/ru/balance.wav: recording for 'balance'" in p and "placeholders" in p
        for p in problems
    )


def test_plan_prompts_makes_a_recording_job(settings: Settings) -> None:
    path = record(settings, "demo", "hello", TAKE_1)
    jobs = {job.rel: job for job in plan_prompts(PromptVoice(settings), ["demo"], ["ru"])}
    recorded = jobs[f"ru/demo/{piece_file('hello', HELLO, sha1(TAKE_1))}"]
    assert (recorded.kind, recorded.text, recorded.alias) == ("recording", HELLO, "ru/demo/hello.wav")
    assert (recorded.recording_file, recorded.digest) == (str(path), sha1(TAKE_1))
    assert f"ru/demo/{piece_file('hello', HELLO)}" not in jobs
    assert {job.kind for rel, job in jobs.items() if rel != recorded.rel} == {"prompt"}
