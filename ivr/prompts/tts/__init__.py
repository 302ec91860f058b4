"""Text-to-speech engines for rendering prompts ahead of calls (never at call time).

An engine turns one text into one audio file in whatever format and rate it produces; `ivr.prompts.render`
then makes telephone audio of it (8 kHz mono 16-bit, trimmed, loudness-normalised).

Engines: `rhvoice` (offline, Debian non-free, good Russian: scripts/install_tts.sh), `espeak` (espeak-ng,
offline, always installed, robotic), `gtts` (Google Translate's online voice; optional, falls back to the
offline engine with a warning when unreachable). `auto` = rhvoice if installed, else espeak.
"""

from __future__ import annotations

import logging

from ivr.prompts.tts.base import SynthesisError, TtsEngine
from ivr.prompts.tts.espeak import EspeakEngine
from ivr.prompts.tts.google import GttsEngine
from ivr.prompts.tts.rhvoice import RhvoiceEngine

log = logging.getLogger(__name__)


__all__ = ["ENGINE_NAMES", "SynthesisError", "TtsEngine", "get_engine"]

ENGINE_NAMES = ("auto", "rhvoice", "espeak", "gtts")


def get_engine(name: str, *, voices: dict[str, str] | None = None) -> TtsEngine:
    """An engine by name; `auto` picks rhvoice when installed, else espeak-ng."""
    name = {"espeak-ng": "espeak"}.get(name, name)
    if name == "auto":
        rh = RhvoiceEngine(voices)
        return rh if rh.available() else EspeakEngine(voices)
    if name == "rhvoice":
        return RhvoiceEngine(voices)
    if name == "espeak":
        return EspeakEngine(voices)
    if name == "gtts":
        return GttsEngine()
    raise ValueError(f"unknown TTS engine {name!r} (known: {', '.join(ENGINE_NAMES)})")
