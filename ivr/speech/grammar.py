"""Vosk grammars: a JSON list of phrases the recognizer may return.

Vosk reads the grammar as JSON; `json.dumps` escapes non-ASCII by default, and the escaped Cyrillic words
are then silently missing from the grammar, so phrases are dumped with `ensure_ascii=False`. Without
`[unk]`, speech outside the grammar is forced onto the nearest phrase with high confidence; with it,
out-of-grammar speech comes back as `[unk]` (only where the model's vocabulary has that word).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from ivr.speech.model import UNK

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s\-]")


def normalise(phrase: str) -> str:
    """Lower case, punctuation dropped, single spaces: how Vosk writes words (ё stays ё)."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", phrase.lower())).strip()


def grammar_phrases(phrases: Iterable[str], *, with_unk: bool) -> list[str]:
    """Normalised phrases without duplicates (first order kept), plus `[unk]` when asked."""
    out: list[str] = []
    for phrase in phrases:
        if phrase.strip().lower() == UNK:
            continue  # added below, only where the model has it
        text = normalise(phrase)
        if text and text not in out:
            out.append(text)
    if with_unk and out:
        out.append(UNK)
    return out


def grammar_json(phrases: Iterable[str], *, with_unk: bool) -> str:
    return json.dumps(grammar_phrases(phrases, with_unk=with_unk), ensure_ascii=False)
