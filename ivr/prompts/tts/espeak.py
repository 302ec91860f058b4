"""espeak-ng: offline, in Debian main, always present; robotic but fast (~10 ms a word)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ivr.prompts.tts.base import SynthesisError

DEFAULT_VOICES = {"ru": "ru", "en": "en-gb", "ko": "ko"}


class EspeakEngine:
    name = "espeak"

    def __init__(self, voices: dict[str, str] | None = None, *, speed: int = 150) -> None:
        self.voices = {**DEFAULT_VOICES, **(voices or {})}
        self.speed = speed
        self.binary = shutil.which("espeak-ng") or shutil.which("espeak")

    def available(self) -> bool:
        return self.binary is not None

    def voice_for(self, lang: str) -> str | None:
        return self.voices.get(lang, lang)

    def synthesize(self, text: str, lang: str, out: Path) -> Path:
        if self.binary is None:
            raise SynthesisError("espeak-ng is not installed (apt-get install espeak-ng)")
        voice = self.voice_for(lang) or lang
        # Text on stdin: never on the command line (a leading '-' would be an option).
        proc = subprocess.run(
            [self.binary, "-v", voice, "-s", str(self.speed), "-w", str(out), "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            raise SynthesisError(
                f"espeak-ng failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}"
            )
        return out
