"""English wording of dynamic values, with the same functions and token rules as `wording_ru`.

Tokens are words as written; numbers 21-99 are one hyphenated token ("twenty-three"), which renders with
better prosody than two fragments. British style: "one hundred and five", "one rouble", "two kopecks",
dates as "December twenty-fifth" (the spoken form of "December 25th").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from ivr.prompts import wording_units

Words = tuple[str, ...]

PAUSE = ","
MINUS = "minus"
PLUS = "plus"
ZERO = "zero"

_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
DIGIT_WORDS = _ONES[:10]

NOUNS: dict[str, tuple[str, str]] = {
    "rouble": ("rouble", "roubles"),
    "kopeck": ("kopeck", "kopecks"),
    "point": ("point", "points"),
    "minute": ("minute", "minutes"),
    "sms": ("message", "messages"),
    "megabyte": ("megabyte", "megabytes"),
    "gigabyte": ("gigabyte", "gigabytes"),
    "day": ("day", "days"),
}

_ORDINAL_ONES = (
    "",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
)
_ORDINAL_TENS = {2: "twentieth", 3: "thirtieth"}
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

MAX_NUMBER = 999_999_999_999


def _below_hundred(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, units = divmod(n, 10)
    return _TENS[tens] if not units else f"{_TENS[tens]}-{_ONES[units]}"


def _below_thousand(n: int, *, and_before_tens: bool) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest:
        if hundreds or and_before_tens:
            words.append("and")
        words.append(_below_hundred(rest))
    return words


def number(n: int) -> Words:
    """number(123) -> ("one", "hundred", "and", "twenty-three")."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"number() needs an int, got {type(n).__name__}")
    if abs(n) > MAX_NUMBER:
        raise ValueError(f"number too large to say: {n}")
    if n < 0:
        return (MINUS, *number(-n))
    if n == 0:
        return (ZERO,)
    words: list[str] = []
    rest = n
    for size, scale in ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand")):
        group, rest = divmod(rest, size)
        if group:
            words += [*_below_thousand(group, and_before_tens=False), scale]
    if rest:
        # "one thousand and five", but "one thousand two hundred".
        words += _below_thousand(rest, and_before_tens=bool(words) and rest < 100)
    return tuple(words)


def noun(n: int, noun_key: str) -> str:
    singular, plural = NOUNS[noun_key]
    return singular if abs(n) == 1 else plural


def count(n: int, noun_key: str) -> Words:
    return (*number(n), noun(n, noun_key))


def money(amount: Decimal | int | float | str) -> Words:
    """12.50 -> "twelve roubles fifty kopecks"; 0.01 -> "one kopeck"; -3 -> "minus three roubles"."""
    return wording_units.money(amount, count, MINUS)


def megabytes(mb: int) -> Words:
    """Under 1024 MB in megabytes, else whole gigabytes plus the remaining megabytes."""
    return wording_units.megabytes(mb, count, MINUS)


def ordinal_day(day: int) -> Words:
    if not 1 <= day <= 31:
        raise ValueError(f"not a day of the month: {day}")
    if day < 20:
        return (_ORDINAL_ONES[day],)
    tens, units = divmod(day, 10)
    if not units:
        return (_ORDINAL_TENS[tens],)
    return (f"{_TENS[tens]}-{_ORDINAL_ONES[units]}",)


def date(value: dt.date) -> Words:
    """December 25th, said: ("December", "twenty-fifth")."""
    return (MONTHS[value.month - 1], *ordinal_day(value.day))


def digits(text: str) -> Words:
    return tuple(DIGIT_WORDS[int(ch)] for ch in text if ch.isdigit())


def phone(number_digits: str) -> Words:
    """Read in the same groups as in Russian, digit by digit (the English habit):
    79221110505 -> "plus seven, nine two two, one one one, zero five, zero five"."""
    plus, groups = wording_units.phone_groups(number_digits)
    words: list[str] = [PLUS] if plus else []
    for i, group in enumerate(groups):
        if i:
            words.append(PAUSE)
        words += digits(group)
    return tuple(words)


def vocabulary() -> frozenset[str]:
    words: set[str] = {PAUSE, MINUS, PLUS, ZERO, "hundred", "and", "thousand", "million", "billion"}
    words.update(_below_hundred(n) for n in range(100))
    for forms in NOUNS.values():
        words.update(forms)
    words.update(w for w in _ORDINAL_ONES if w)
    words.update(_ORDINAL_TENS.values())
    words.update(ordinal_day(d)[0] for d in range(1, 32))
    words.update(MONTHS)
    return frozenset(words)


def join(words: Iterable[str]) -> str:
    out = ""
    for word in words:
        if word == PAUSE:
            out += ","
        else:
            out += (" " if out else "") + word
    return out
