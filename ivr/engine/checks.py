"""Checks for collected digits (`check:` on a collect node). The facts themselves (card check digits,
Russian phone numbers) live in `ivr.numbering`, shared with the services that store the values."""

from __future__ import annotations

from ivr.numbering.cards import ean13_ok, luhn_ok, valid_card_number
from ivr.numbering.phone import normalize_msisdn

CHECKS = ("length", "luhn", "ean13", "card", "ru_phone")


def check_digits(check: str | None, digits: str) -> str | None:
    """The value to store, or None when the digits fail the check."""
    if not (digits.isascii() and digits.isdigit()):
        return None
    if check in (None, "length"):
        return digits
    if check == "luhn":
        return digits if luhn_ok(digits) else None
    if check == "ean13":
        return digits if ean13_ok(digits) else None
    if check == "card":
        return digits if valid_card_number(digits) else None
    if check == "ru_phone":
        return normalize_msisdn(digits)
    raise ValueError(f"unknown check {check!r}")
