"""What every TTS engine is: the protocol and its one error."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class SynthesisError(RuntimeError):
    """The engine could not say a text (engine missing, voice missing, service unreachable)."""


class TtsEngine(Protocol):
    name: str

    def available(self) -> bool: ...

    def voice_for(self, lang: str) -> str | None:
        """The voice used for a language, or None when this engine cannot speak it."""
        ...

    def synthesize(self, text: str, lang: str, out: Path) -> Path:
        """Write `text` as audio to `out` (or a sibling with another suffix); return the file written."""
        ...
