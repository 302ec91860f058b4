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


def phone_groups(number_digits: str) -> tuple[bool, list[str]]:
    """Split a phone number into the groups it is read in. Returns (leading plus, groups).

    Russian numbers: 7XXXXXXXXXX -> +7 XXX XXX XX XX; 8XXXXXXXXXX -> 8 XXX XXX XX XX; 10 digits ->
    XXX XXX XX XX; short numbers (up to 4 digits) in pairs ("05 05"); anything else in threes with the
    last four as two pairs.
    """
    raw = number_digits.strip()
    plus = raw.startswith("+")
    ds = "".join(ch for ch in raw if ch.isdigit())
    if len(ds) == 11 and ds[0] == "7":
        return True, [ds[0], ds[1:4], ds[4:7], ds[7:9], ds[9:11]]
    if len(ds) == 11 and ds[0] == "8":
        return plus, [ds[0], ds[1:4], ds[4:7], ds[7:9], ds[9:11]]
    if len(ds) == 10:
        return plus, [ds[0:3], ds[3:6], ds[6:8], ds[8:10]]
    if len(ds) <= 4:
        if len(ds) <= 2:
            return plus, [ds] if ds else []
        if len(ds) == 3:
            return plus, [ds]
        return plus, [ds[0:2], ds[2:4]]
    head, tail = ds[:-4], ds[-4:]
    groups = [head[i : i + 3] for i in range(0, len(head), 3)]
    if len(groups) > 1 and len(groups[-1]) == 1:  # avoid a lone digit: 3+1 -> 2+2
        merged = groups[-2] + groups[-1]
        groups[-2:] = [merged[:2], merged[2:]]
    return plus, [*groups, tail[:2], tail[2:]]
