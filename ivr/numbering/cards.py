"""Loyalty and bank card numbers: the one definition of their check digits.

The engine checks keyed card numbers with it (`check: card` in a tree), the services check a number before
storing it, and the demo data makes valid numbers with it, so a number the keypad accepts is a number the
account accepts.

A card number is either an EAN-13 code (13 digits, the retail programme's plastic and virtual cards) or a
payment-card number of 16 to 19 digits with a Luhn check digit.
"""

from __future__ import annotations

EAN13_LENGTH = 13
PAYMENT_CARD_LENGTHS = range(16, 20)


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check over any number of ASCII digits (at least two)."""
    if not (digits.isascii() and digits.isdigit()) or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def ean13_check_digit(first12: str) -> int:
    """The check digit that completes 12 digits to an EAN-13 code."""
    weighted = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return (10 - weighted % 10) % 10


def with_ean13_check_digit(first12: str) -> str:
    """12 digits completed to a valid EAN-13 code."""
    if len(first12) != EAN13_LENGTH - 1 or not (first12.isascii() and first12.isdigit()):
        raise ValueError("an EAN-13 code starts with 12 digits")
    return first12 + str(ean13_check_digit(first12))


def ean13_ok(digits: str) -> bool:
    if len(digits) != EAN13_LENGTH or not (digits.isascii() and digits.isdigit()):
        return False
    return ean13_check_digit(digits[:12]) == int(digits[12])


def valid_card_number(number: str) -> bool:
    """A card number we accept: a valid EAN-13 code, or 16-19 digits passing the Luhn check."""
    if len(number) == EAN13_LENGTH:
        return ean13_ok(number)
    return len(number) in PAYMENT_CARD_LENGTHS and luhn_ok(number)
