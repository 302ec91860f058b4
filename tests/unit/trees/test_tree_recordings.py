"""Recordings made by people (prompts/recordings/<source>/<lang>/<key>.wav) belong to the set of texts: the
catalogue carries the digest of each, the tree check refuses one that cannot replace its text (file named),
and the store takes a set again when a recording is added, replaced or removed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ivr.engine.actions import ActionCatalog
from ivr.trees import TreeInvalid, TreeStore, load_tree
from ivr.trees.texts import load_texts, recording_problems

PROMPTS = Path(__file__).resolve().parents[3] / "prompts"
WAV = b"RIFF....WAVEfmt a person says hello"  # the check and the store never decode it


def _copy_line(dst: Path) -> Path:
    (dst / "texts").mkdir()
    for src in [
        PROMPTS / "loyalty.yaml",
        *(PROMPTS / "texts").glob("loyalty.*.yaml"),
        *(PROMPTS / "texts").glob("common.*.yaml"),
    ]:
        (dst / src.relative_to(PROMPTS)).write_bytes(src.read_bytes())
    return dst / "loyalty.yaml"


def _record(prompts: Path, source: str, lang: str, key: str, data: bytes = WAV) -> Path:
    path = prompts / "recordings" / source / lang / f"{key}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_the_catalogue_carries_the_digest_of_each_recording(tmp_path: Path) -> None:
    _copy_line(tmp_path)
    _record(tmp_path, "loyalty", "ru", "welcome")
    _record(tmp_path, "common", "ru", "goodbye", WAV + b"!")
    _record(tmp_path, "common", "de", "goodbye")  # a language the catalogue does not load: not its own
    (tmp_path / "recordings" / "loyalty" / "ru" / ".welcome.wav.tmp").write_bytes(b"half")
    catalog = load_texts(tmp_path / "texts", "loyalty", ["ru", "en"])
    assert catalog.recordings == {
        ("loyalty", "ru", "welcome"): hashlib.sha1(WAV).hexdigest(),
        ("common", "ru", "goodbye"): hashlib.sha1(WAV + b"!").hexdigest(),
    }
    assert catalog.recording_path("loyalty", "ru", "welcome") == (
        tmp_path / "recordings" / "loyalty" / "ru" / "welcome.wav"
    )
    assert load_texts(tmp_path / "texts", "loyalty", ["en"]).recordings == {
        ("loyalty", "ru", "welcome"): hashlib.sha1(WAV).hexdigest()  # the line's own, in any language
    }


def test_a_recording_of_a_text_without_placeholders_passes(tmp_path: Path, catalog: ActionCatalog) -> None:
    tree_file = _copy_line(tmp_path)
    _record(tmp_path, "loyalty", "ru", "welcome")
    _record(tmp_path, "common", "ru", "goodbye")  # common texts may be recorded too
    assert load_tree(tree_file, catalog).line == "loyalty"


def test_a_recording_of_a_text_with_placeholders_is_refused_naming_the_file(
    tmp_path: Path, catalog: ActionCatalog
) -> None:
    tree_file = _copy_line(tmp_path)
    recording = _record(tmp_path, "loyalty", "ru", "pin_wrong")
    with pytest.raises(TreeInvalid) as refused:
        load_tree(tree_file, catalog)
    (error,) = refused.value.errors
    assert (error.file, error.code) == (str(recording), "recording")
    assert "'pin_wrong'" in error.message and "{attempts_left:number}" in error.message
    assert "only a text without placeholders can be recorded" in error.message
    assert str(error).startswith(f"{recording}:1: recording: ")


@pytest.mark.parametrize(
    ("source", "lang", "key"),
    [
        ("loyalty", "ru", "no_such_key"),  # no text at all
        ("loyalty", "en", "welcome"),  # a language the line does not offer
        ("loyalty", "ru", "goodbye"),  # only a common text: a line's recording is of the line's own text
        ("common", "ru", "no_such_key"),
    ],
)
def test_a_recording_of_a_key_without_text_is_refused(
    tmp_path: Path, catalog: ActionCatalog, source: str, lang: str, key: str
) -> None:
    tree_file = _copy_line(tmp_path)
    recording = _record(tmp_path, source, lang, key)
    with pytest.raises(TreeInvalid) as refused:
        load_tree(tree_file, catalog)
    (error,) = refused.value.errors
    assert (error.file, error.code) == (str(recording), "recording")
    assert f"has no {lang} text in texts/{source}.{lang}.yaml" in error.message


def test_recording_problems_of_plain_texts(tmp_path: Path) -> None:
    texts = {("a", "ru"): {"hi": "Привет.", "sum": "Итого {n:number}.", "dots": "..."}}
    recordings = [("a", "ru", "hi"), ("a", "ru", "sum"), ("a", "ru", "dots"), ("a", "en", "hi")]
    problems = recording_problems(texts, recordings, tmp_path)
    assert [path.relative_to(tmp_path).as_posix() for path, _why in problems] == [
        "a/en/hi.wav",
        "a/ru/sum.wav",
    ]


def test_the_store_takes_the_set_again_when_a_recording_changes(
    tmp_path: Path, catalog: ActionCatalog
) -> None:
    _copy_line(tmp_path)
    store = TreeStore(tmp_path, catalog, poll_seconds=0)
    _tree, first = store.get_set("loyalty")
    assert first.recordings == {}

    recording = _record(tmp_path, "loyalty", "ru", "welcome")
    _tree, second = store.get_set("loyalty")
    assert second is not first
    assert second.recordings == {("loyalty", "ru", "welcome"): hashlib.sha1(WAV).hexdigest()}
    assert store.get_set("loyalty")[1] is second  # nothing changed: the same set

    recording.write_bytes(WAV + b" again")
    os.utime(recording, ns=(1, 1))  # a replacement whose time says nothing: the size tells
    _tree, third = store.get_set("loyalty")
    assert third.recordings == {("loyalty", "ru", "welcome"): hashlib.sha1(WAV + b" again").hexdigest()}

    common = _record(tmp_path, "common", "ru", "goodbye")
    assert (
        store.get_set("loyalty")[1].recordings[("common", "ru", "goodbye")] == hashlib.sha1(WAV).hexdigest()
    )
    common.unlink()
    recording.unlink()
    assert store.get_set("loyalty")[1].recordings == {}


def test_the_store_refuses_a_set_with_a_bad_recording_and_keeps_the_old(
    tmp_path: Path, catalog: ActionCatalog
) -> None:
    _copy_line(tmp_path)
    store = TreeStore(tmp_path, catalog, poll_seconds=0)
    _tree, first = store.get_set("loyalty")
    recording = _record(tmp_path, "loyalty", "ru", "pin_wrong")
    assert store.get_set("loyalty")[1] is first
    assert [(e.file, e.code) for e in store.errors["loyalty"]] == [(str(recording), "recording")]
    recording.unlink()
    assert store.get_set("loyalty")[1] is not first and "loyalty" not in store.errors
