"""RHVoice: offline, natural Russian (Debian non-free `rhvoice rhvoice-russian`, scripts/install_tts.sh).

Default voices: Russian "anna" (LGPL-2.1), English "slt". About 0.15 of real time.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ivr.prompts.tts.base import SynthesisError

DEFAULT_VOICES = {"ru": "anna", "en": "slt"}
VOICE_DIRS = (Path("/usr/share/RHVoice/voices"), Path("/usr/local/share/RHVoice/voices"))


class RhvoiceEngine:
    name = "rhvoice"

    def __init__(self, voices: dict[str, str] | None = None) -> None:
        self.voices = {**DEFAULT_VOICES, **(voices or {})}
        self.binary = shutil.which("RHVoice-test")

    def installed_voices(self) -> set[str]:
        found: set[str] = set()
        for base in VOICE_DIRS:
            if base.is_dir():
                found.update(p.name for p in base.iterdir() if p.is_dir())
        return found

    def available(self) -> bool:
        return self.binary is not None and self.voices["ru"] in self.installed_voices()

    def voice_for(self, lang: str) -> str | None:
        voice = self.voices.get(lang)
        return voice if voice and voice in self.installed_voices() else None

    def synthesize(self, text: str, lang: str, out: Path) -> Path:
        voice = self.voice_for(lang)
        if self.binary is None or voice is None:
            raise SynthesisError(f"RHVoice has no voice for {lang!r} (scripts/install_tts.sh)")
        proc = subprocess.run(
            [self.binary, "-p", voice, "-o", str(out)],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
            raise SynthesisError(
                f"RHVoice failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}"
            )
        return out
