"""gTTS (Google Translate's voice): optional, online. Rendering never waits long for it: a short timeout,
and the caller (`render`) falls back to the offline engine with a warning when it is unreachable.

gTTS gives MP3; this engine hands the file over as it is, and `render` decodes it with pydub (through
ffmpeg) before the band-limited resampling to 8 kHz."""

from __future__ import annotations

import logging
from pathlib import Path

from ivr.prompts.tts.base import SynthesisError

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0


class GttsEngine:
    name = "gtts"

    def __init__(self, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.timeout = timeout

    def available(self) -> bool:
        try:
            import gtts  # noqa: F401
        except ImportError:
            return False
        return True

    def voice_for(self, lang: str) -> str | None:
        return lang if lang in ("ru", "en", "ko") else None

    def synthesize(self, text: str, lang: str, out: Path) -> Path:
        try:
            from gtts import gTTS
        except ImportError as exc:
            raise SynthesisError("gTTS is not installed") from exc
        mp3 = out.with_suffix(".mp3")
        try:
            # gTTS has no timeout by default and can hang for ever; ours is short.
            gTTS(text, lang=lang, timeout=self.timeout).save(str(mp3))
        except Exception as exc:  # gTTSError, requests' connection errors, timeouts
            raise SynthesisError(f"gTTS unreachable: {type(exc).__name__}: {str(exc)[:160]}") from exc
        return mp3
