"""Digit words per language (ivr.engine.spoken): a phrase of them reads as digits, anything else as
nothing."""

from __future__ import annotations

import pytest

from ivr.engine.spoken import DIGIT_WORDS, digit_words, normalize_phrase, spoken_digits


@pytest.mark.parametrize(
    ("language", "said", "digits"),
    [
        ("ru", "ноль один два три четыре пять шесть семь восемь девять", "0123456789"),
        ("ru", "нуль одна две", "012"),
        ("ru", "Восемь, девять два два!", "8922"),
        ("ru", "семь  семь\tсемь", "777"),
        ("en", "zero one two three four five six seven eight nine", "0123456789"),
        ("en", "Oh oh seven", "007"),
        ("ko", "영 일 이 삼 사 오 육 칠 팔 구", "0123456789"),
        ("ko", "공 일 공", "010"),
        ("ru", "один 2 3", "123"),  # a recogniser that writes numerals
    ],
)
def test_digit_words_read_as_digits(language: str, said: str, digits: str) -> None:
    assert spoken_digits(said, language) == digits


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("ru", ""),
        ("ru", "  , "),
        ("ru", "один два мама"),
        ("ru", "двадцать три"),  # a number as a number, not digit by digit
        ("ru", "сто"),
        ("ru", "one two"),  # another language's words
        ("en", "twenty one"),
        ("en", "один"),
        ("ko", "이십 삼"),  # "twenty three" in Sino-Korean
        ("ko", "하나 둘"),  # native Korean numbers: not how codes are said
        ("ko", "일이삼"),  # one word is not three
        ("de", "eins zwei"),  # a language without digit words
        ("ru", "١٢"),  # digits, but not ASCII ones
    ],
)
def test_anything_but_digit_words_is_nothing(language: str, said: str) -> None:
    assert spoken_digits(said, language) is None


def test_every_language_has_each_digit_and_words_as_the_recogniser_writes_them() -> None:
    for language, words in DIGIT_WORDS.items():
        assert set(words.values()) == set("0123456789"), language
        assert all(normalize_phrase(word) == word for word in words), language
        assert digit_words(language) == tuple(words)
    assert digit_words("de") == ()


@pytest.mark.parametrize(("raw", "norm"), [("Ёлка!", "елка"), ("  Мой   СЧЁТ, да ", "мой счет да")])
def test_phrases_are_compared_normalised(raw: str, norm: str) -> None:
    assert normalize_phrase(raw) == norm
