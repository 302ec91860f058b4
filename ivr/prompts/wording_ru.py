"""Russian wording of dynamic values: numbers, money, counts, dates, phone numbers, digits.

Every function returns a tuple of word tokens (`Words`). A token is one spoken word as written
("двадцать", "одна", "копейки") or the pause mark `PAUSE` (a comma in text, a short silence in audio).
All tokens that can ever come out of this module form the finite set `vocabulary()`, which
`ivr prompts render` pre-renders one file per word; at call time a value is said by playing the files of
its tokens in order. Nothing here touches the network or the disk.

Grammar used:
  * cardinal numbers agree in gender with what they count: "один рубль", "одна копейка", "одно
    сообщение", "две тысячи", "двадцать одна тысяча", "два миллиона";
  * the counted noun takes the form chosen by the last two digits: 1, 21, 101 -> singular ("рубль");
    2-4, 22-24 -> genitive singular ("рубля"); 0, 5-20, 11-14, 25-30 -> genitive plural ("рублей");
  * a date is the genitive ordinal of the day plus the genitive month: "двадцать пятого декабря".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

from ivr.prompts import wording_units

Gender = Literal["m", "f", "n"]
Words = tuple[str, ...]

PAUSE = ","  # a short pause between groups (phone numbers); "," in text, silence in audio
MINUS = "минус"
PLUS = "плюс"

ZERO = "ноль"
_UNITS: dict[Gender, tuple[str, ...]] = {
    "m": ("", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"),
    "f": ("", "одна", "две", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"),
    "n": ("", "одно", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"),
}
_TEENS = (
    "десять",
    "одиннадцать",
    "двенадцать",
    "тринадцать",
    "четырнадцать",
    "пятнадцать",
    "шестнадцать",
    "семнадцать",
    "восемнадцать",
    "девятнадцать",
)
_TENS = (
    "",
    "",
    "двадцать",
    "тридцать",
    "сорок",
    "пятьдесят",
    "шестьдесят",
    "семьдесят",
    "восемьдесят",
    "девяносто",
)
_HUNDREDS = (
    "",
    "сто",
    "двести",
    "триста",
    "четыреста",
    "пятьсот",
    "шестьсот",
    "семьсот",
    "восемьсот",
    "девятьсот",
)

# Digits as read one by one (card numbers, phone groups with a leading zero).
DIGIT_WORDS = ("ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять")

# (singular, genitive singular, genitive plural), gender
NOUNS: dict[str, tuple[tuple[str, str, str], Gender]] = {
    "rouble": (("рубль", "рубля", "рублей"), "m"),
    "kopeck": (("копейка", "копейки", "копеек"), "f"),
    "point": (("балл", "балла", "баллов"), "m"),
    "minute": (("минута", "минуты", "минут"), "f"),
    "sms": (("сообщение", "сообщения", "сообщений"), "n"),
    "megabyte": (("мегабайт", "мегабайта", "мегабайт"), "m"),
    "gigabyte": (("гигабайт", "гигабайта", "гигабайт"), "m"),
    "day": (("день", "дня", "дней"), "m"),
    "thousand": (("тысяча", "тысячи", "тысяч"), "f"),
    "million": (("миллион", "миллиона", "миллионов"), "m"),
    "billion": (("миллиард", "миллиарда", "миллиардов"), "m"),
}

# Genitive ordinals for days of the month: "первого" ... "тридцатого" (21..31 are compound).
_ORDINAL_GEN_UNITS = (
    "",
    "первого",
    "второго",
    "третьего",
    "четвёртого",
    "пятого",
    "шестого",
    "седьмого",
    "восьмого",
    "девятого",
)
_ORDINAL_GEN_TEENS = (
    "десятого",
    "одиннадцатого",
    "двенадцатого",
    "тринадцатого",
    "четырнадцатого",
    "пятнадцатого",
    "шестнадцатого",
    "семнадцатого",
    "восемнадцатого",
    "девятнадцатого",
)
_ORDINAL_GEN_TENS = {2: "двадцатого", 3: "тридцатого"}
MONTHS_GEN = (
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
)

MAX_NUMBER = 999_999_999_999


def plural_form(n: int) -> int:
    """0: singular ("рубль"), 1: genitive singular ("рубля"), 2: genitive plural ("рублей")."""
    n = abs(n)
    if 11 <= n % 100 <= 14:
        return 2
    last = n % 10
    if last == 1:
        return 0
    if 2 <= last <= 4:
        return 1
    return 2


def noun(n: int, noun_key: str) -> str:
    forms, _gender = NOUNS[noun_key]
    return forms[plural_form(n)]


def _below_thousand(n: int, gender: Gender) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words.append(_HUNDREDS[hundreds])
    if 10 <= rest <= 19:
        words.append(_TEENS[rest - 10])
    else:
        tens, units = divmod(rest, 10)
        if tens:
            words.append(_TENS[tens])
        if units:
            words.append(_UNITS[gender][units])
    return words


def number(n: int, gender: Gender = "m") -> Words:
    """A cardinal number agreeing with a noun of `gender`: number(21, "f") -> ("двадцать", "одна")."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"number() needs an int, got {type(n).__name__}")
    if abs(n) > MAX_NUMBER:
        raise ValueError(f"number too large to say: {n}")
    if n < 0:
        return (MINUS, *number(-n, gender))
    if n == 0:
        return (ZERO,)
    words: list[str] = []
    scales = (
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    )
    rest = n
    for size, key in scales:
        count, rest = divmod(rest, size)
        if count:
            scale_gender = NOUNS[key][1]
            words += _below_thousand(count, scale_gender)
            words.append(noun(count, key))
    if rest:
        words += _below_thousand(rest, gender)
    return tuple(words)


def count(n: int, noun_key: str) -> Words:
    """A number with its noun: count(21, "point") -> ("двадцать", "один", "балл")."""
    gender = NOUNS[noun_key][1]
    return (*number(n, gender), noun(n, noun_key))


def money(amount: Decimal | int | float | str) -> Words:
    """Roubles and kopecks: 123.45 -> "сто двадцать три рубля сорок пять копеек".

    Whole amounts omit kopecks; amounts under a rouble say kopecks only; zero is "ноль рублей"; negative
    amounts start with "минус". Rounded half-up to the kopeck.
    """
    return wording_units.money(amount, count, MINUS)


def megabytes(mb: int) -> Words:
    """Under 1024 MB in megabytes, else whole gigabytes plus the remaining megabytes."""
    return wording_units.megabytes(mb, count, MINUS)


def ordinal_day_genitive(day: int) -> Words:
    if not 1 <= day <= 31:
        raise ValueError(f"not a day of the month: {day}")
    if day < 10:
        return (_ORDINAL_GEN_UNITS[day],)
    if day < 20:
        return (_ORDINAL_GEN_TEENS[day - 10],)
    tens, units = divmod(day, 10)
    if not units:
        return (_ORDINAL_GEN_TENS[tens],)
    return (_TENS[tens], _ORDINAL_GEN_UNITS[units])


def date(value: dt.date) -> Words:
    """Day and month, as in "до двадцать пятого декабря": ("двадцать", "пятого", "декабря")."""
    return (*ordinal_day_genitive(value.day), MONTHS_GEN[value.month - 1])


def digits(text: str) -> Words:
    """Digit by digit: "0505" -> ("ноль", "пять", "ноль", "пять"). Non-digits are ignored."""
    return tuple(DIGIT_WORDS[int(ch)] for ch in text if ch.isdigit())


def _group(group: str) -> Words:
    """One group of a phone number: a leading zero is read as "ноль", the rest as a number ("050" ->
    "ноль пятьдесят"); "05" -> "ноль пять"; "922" -> "девятьсот двадцать два"."""
    words: list[str] = []
    i = 0
    while i < len(group) - 1 and group[i] == "0":
        words.append(ZERO)
        i += 1
    words += number(int(group[i:]))
    return tuple(words)


def phone(number_digits: str) -> Words:
    """79221110505 -> "плюс семь, девятьсот двадцать два, сто одиннадцать, ноль пять, ноль пять"."""
    plus, groups = wording_units.phone_groups(number_digits)
    words: list[str] = [PLUS] if plus else []
    for i, group in enumerate(groups):
        if i:
            words.append(PAUSE)
        words += _group(group)
    return tuple(words)


def vocabulary() -> frozenset[str]:
    """Every token this module can produce (names excepted)."""
    words: set[str] = {PAUSE, MINUS, PLUS, ZERO}
    for units in _UNITS.values():
        words.update(w for w in units if w)
    words.update(_TEENS)
    words.update(w for w in _TENS if w)
    words.update(w for w in _HUNDREDS if w)
    words.update(DIGIT_WORDS)
    for forms, _gender in NOUNS.values():
        words.update(forms)
    words.update(w for w in _ORDINAL_GEN_UNITS if w)
    words.update(_ORDINAL_GEN_TEENS)
    words.update(_ORDINAL_GEN_TENS.values())
    words.update(MONTHS_GEN)
    return frozenset(words)


def join(words: Iterable[str]) -> str:
    """Tokens as text: words separated by spaces, the pause mark as a comma."""
    out = ""
    for word in words:
        if word == PAUSE:
            out += ","
        else:
            out += (" " if out else "") + word
    return out
