"""Checks for collected digits: card numbers (Luhn, EAN-13) and Russian phone numbers."""

from __future__ import annotations

CHECKS = ("length", "luhn", "ean13", "card", "ru_phone")


def luhn_ok(digits: str) -> bool:
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def ean13_ok(digits: str) -> bool:
    if len(digits) != 13 or not digits.isdigit():
        return False
    weighted = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    return (10 - weighted % 10) % 10 == int(digits[12])


def normalize_ru_phone(digits: str) -> str | None:
    """A Russian number as 11 digits starting with 7, or None: 8XXXXXXXXXX, 7XXXXXXXXXX and the 10-digit
    form 9XXXXXXXXX are accepted."""
    if not digits.isdigit():
        return None
    if len(digits) == 11 and digits[0] in "78":
        return "7" + digits[1:]
    if len(digits) == 10 and digits[0] == "9":
        return "7" + digits
    return None


def check_digits(check: str | None, digits: str) -> str | None:
    """The value to store, or None when the digits fail the check."""
    if not digits.isdigit():
        return None
    if check in (None, "length"):
        return digits
    if check == "luhn":
        return digits if luhn_ok(digits) else None
    if check == "ean13":
        return digits if ean13_ok(digits) else None
    if check == "card":
        return digits if (ean13_ok(digits) or luhn_ok(digits)) else None
    if check == "ru_phone":
        return normalize_ru_phone(digits)
    raise ValueError(f"unknown check {check!r}")
