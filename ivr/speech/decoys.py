"""Decoys: everyday words added to a menu's grammar where the model has no `[unk]`, so that speech outside
the menu lands on them (and counts as no match) instead of being forced onto the nearest menu phrase.

The Korean small model (the one the tests use) has no `[unk]`; a Russian or English small model has it,
and then these lists are not used. Only words in the model's vocabulary are added (`has_word`), and a word
that is one of the menu's own phrases is never a decoy (CallRecognizer.start drops it).
"""

from __future__ import annotations

from typing import Any

from ivr.speech.model import has_word

DECOYS: dict[str, list[str]] = {
    "ko": [
        "네",
        "예",
        "아니요",
        "감사합니다",
        "오늘",
        "날씨",
        "좋아요",
        "뭐",
        "여보세요",
        "잠깐",
        "음",
        "어",
        "그냥",
        "누구",
        "시간",
        "돈",
        "전화",
        "지금",
        "여기",
        "정말",
        "좋네요",
        "사람",
        "문의",
        "주세요",
        "없어요",
        "있어요",
        "해요",
        "그리고",
        "이거",
        "그거",
        "좀",
    ],
    "ru": [
        "да",
        "нет",
        "алло",
        "здравствуйте",
        "спасибо",
        "пожалуйста",
        "хорошо",
        "что",
        "как",
        "где",
        "когда",
        "почему",
        "сколько",
        "деньги",
        "телефон",
        "девушка",
        "человек",
        "погода",
        "сегодня",
        "слушаю",
    ],
    "en": [
        "yes",
        "no",
        "hello",
        "hi",
        "thanks",
        "please",
        "okay",
        "what",
        "how",
        "where",
        "when",
        "why",
        "weather",
        "today",
        "money",
        "phone",
        "person",
    ],
}


def decoys_for(model: Any, language: str) -> tuple[str, ...]:
    """The decoys of `language` that `model` knows (none for a model with `[unk]`: it needs none)."""
    return tuple(word for word in DECOYS.get(language, ()) if has_word(model, word))
