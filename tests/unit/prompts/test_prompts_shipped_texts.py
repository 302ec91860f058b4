"""Every shipped text (prompts/texts/*.yaml) can be said with sample values, in text and as files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ivr.config import PROJECT_ROOT, Settings
from ivr.engine.commands import PromptRef
from ivr.prompts.voice import COMMON, KINDS, PromptVoice, parse_template

SAMPLES: dict[str, Any] = {
    "money": Decimal("-1021.02"),
    "points": 21,
    "minutes": 22,
    "sms": 5,
    "megabytes": 1536,
    "gigabytes": 2,
    "days": 14,
    "number": 3,
    "date": dt.date(2026, 12, 25),
    "phone": "79221110505",
    "digits": "4021",
    "name": "Безлимит",
}


def shipped_voice(tmp_path: Path) -> PromptVoice:
    return PromptVoice(Settings(home=PROJECT_ROOT, var_dir=tmp_path / "var"))


def test_sample_for_every_kind() -> None:
    assert set(SAMPLES) == set(KINDS)


def test_every_shipped_text_is_sayable(tmp_path: Path) -> None:
    voice = shipped_voice(tmp_path)
    if not voice.lines():
        pytest.skip("no line texts shipped yet")
    checked = 0
    for line in voice.lines():
        for lang in voice.languages(line):
            for source in (line, COMMON):
                for key in voice.keys(source, lang):
                    text = voice.raw_text(source, lang, key) or ""
                    template = parse_template(key, text, lang, source)
                    values = {s.name: SAMPLES[s.kind] for s in template.segments if s.static is None}
                    ref = PromptRef(key, values)
                    said = voice.text(line, lang, ref)
                    assert said and "{" not in said, (line, lang, key, said)
                    files = voice.files(line, lang, ref)
                    # Names are not rendered here (skipped with a warning); everything else has a file.
                    only_names = all(
                        s.static is None and s.kind == "name"
                        for s in template.segments
                        if s.index >= 0 or s.static is None
                    )
                    assert files or only_names, (line, key)
                    assert all(p.suffix == ".wav" and p.is_absolute() for p in files), (line, key)
                    checked += 1
    assert checked > 20
