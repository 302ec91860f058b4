"""Card numbers: one definition of the check digits for the keypad, the services and the demo data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.engine.checks import check_digits
from ivr.numbering.cards import ean13_ok, luhn_ok, valid_card_number, with_ean13_check_digit
from ivr.services import cards


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4006381333931", True),  # EAN-13
        ("4006381333932", False),  # EAN-13 with a wrong check digit
        ("4111111111111111", True),  # 16-digit Luhn
        ("4111111111111112", False),
        ("6011000990139424", True),
        ("378282246310005", False),  # 15-digit Luhn: not a card length we issue or accept
        ("30569309025904", False),  # 14-digit Luhn
        ("4111111111111111000", False),  # 19 digits, Luhn fails
        ("", False),
        ("４００６３８１３３３９３１", False),  # full-width digits are not ASCII digits
    ],
)
def test_card_numbers(number: str, valid: bool) -> None:
    assert valid_card_number(number) is valid


def test_luhn_and_ean13_known_values() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert ean13_ok("4006381333931") and not ean13_ok("400638133393")
    assert with_ean13_check_digit("400638133393") == "4006381333931"
    with pytest.raises(ValueError):
        with_ean13_check_digit("40063813339")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789", min_size=0, max_size=20))
def test_the_keypad_and_the_account_accept_the_same_cards(digits: str) -> None:
    """What `check: card` lets through is exactly what the services store (they were three copies once,
    and the keypad took 14-15-digit numbers the account then refused)."""
    keyed = check_digits("card", digits)
    assert (keyed is not None) is valid_card_number(digits) is cards.valid_card_number(digits)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=12, max_size=12), st.integers(min_value=0, max_value=12))
def test_an_ean13_code_with_one_digit_changed_is_refused(first12: str, position: int) -> None:
    number = with_ean13_check_digit(first12)
    assert valid_card_number(number)
    wrong = number[:position] + str((int(number[position]) + 1) % 10) + number[position + 1 :]
    assert not valid_card_number(wrong)
