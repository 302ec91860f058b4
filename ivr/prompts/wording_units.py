"""Amounts built from counted units, the same in every language: a language gives its `count` (number
plus the noun in the right form) and its word for "minus"."""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

Words = tuple[str, ...]
Count = Callable[[int, str], Words]


def money(amount: Decimal | int | float | str, count: Count, minus: str) -> Words:
    """Roubles and kopecks, rounded half-up to the kopeck. Whole amounts omit kopecks; amounts under a
    rouble say kopecks only; zero says zero roubles; negative amounts start with `minus`."""
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    words: list[str] = []
    if value < 0:
        words.append(minus)
        value = -value
    roubles, kopecks = divmod(int(value * 100), 100)
    if roubles or not kopecks:
        words += count(roubles, "rouble")
    if kopecks:
        words += count(kopecks, "kopeck")
    return tuple(words)


def megabytes(mb: int, count: Count, minus: str) -> Words:
    """Data volume: under 1024 MB in megabytes, else whole gigabytes plus the remaining megabytes."""
    if mb < 0:
        return (minus, *megabytes(-mb, count, minus))
    gb, rest = divmod(mb, 1024)
    if not gb:
        return count(mb, "megabyte")
    words = count(gb, "gigabyte")
    if rest:
        words += count(rest, "megabyte")
    return words
