"""Caller-ID and keyed-number normalisation: every form trunks and callers send, hostile strings, and
property tests (any text in: never an exception, and a result is always 11 digits from 7)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.engine.checks import check_digits
from ivr.numbering.phone import (
    MAX_RAW,
    keyed_digits,
    normalize_msisdn,
    parse_caller_id,
    service_number_key,
)
from ivr.services.common import normalize_msisdn as common_normalize

IVAN = "79161234567"


@pytest.mark.parametrize(
    "raw",
    [
        "79161234567",
        "+79161234567",
        "89161234567",
        "9161234567",
        "+7 916 123-45-67",
        "8 (916) 123-45-67",
        "+7.916.123.45.67",
        "0079161234567",
        "00 7 916 123 45 67",
        "81079161234567",
        "810 7 916 1234567",
        '"Иван Петров" <sip:+79161234567@192.0.2.10:5060>',
        "<sip:79161234567@trunk.example;user=phone>",
        "sip:89161234567@host",
        "tel:+79161234567",
        "  +79161234567  ",
    ],
)
def test_every_form_of_a_russian_number(raw: str) -> None:
    cid = parse_caller_id(raw)
    assert (cid.kind, cid.msisdn) == ("number", IVAN)
    assert normalize_msisdn(raw) == IVAN
    assert cid.bucket() == IVAN


@pytest.mark.parametrize(
    "raw",
    [None, "", "  ", "anonymous", "Anonymous", "unknown", "UNKNOWN", "restricted", "private", "withheld",
     '"Anonymous" <sip:anonymous@anonymous.invalid>', "<unknown>", '""'],
)  # fmt: skip
def test_withheld_forms(raw: str | None) -> None:
    cid = parse_caller_id(raw)
    assert cid.kind == "withheld" and cid.msisdn is None and not cid.present
    assert cid.bucket() == "withheld"


@pytest.mark.parametrize(
    "raw",
    [
        "'; DROP TABLE subscriber; --",
        "79161234567; rm -rf /",
        "$(reboot)",
        "`id`",
        "7916123456\n7",
        "79161234567' OR '1'='1",
        "9" * (MAX_RAW + 1),
        "+7 916 123 45 67" + " " * MAX_RAW,
        "<sip:$(id)@host>",
        "\x00\x01",
        "0505",
        "1" * 40,
    ],
)
def test_hostile_or_garbage_caller_ids_are_invalid(raw: str) -> None:
    cid = parse_caller_id(raw)
    assert cid.kind == "invalid" and cid.msisdn is None
    assert cid.bucket() == "invalid"


def test_foreign_numbers_are_numbers_but_not_ours() -> None:
    cid = parse_caller_id("+44 20 7946 0000")
    assert (cid.kind, cid.msisdn, cid.international) == ("number", None, "442079460000")
    assert cid.bucket() == "442079460000"
    assert parse_caller_id("00442079460000").international == "442079460000"


def test_common_normalize_is_the_same_function() -> None:
    for raw in ("+7 916 123-45-67", "anonymous", "12", None):
        assert common_normalize(raw) == normalize_msisdn(raw)


@pytest.mark.parametrize(
    ("raw", "key"),
    [("0505", "0505"), ("0500", "0500"), ("88005500500", "78005500500"), ("+78005500500", "78005500500"),
     ("78005500500", "78005500500"), ("+7 922 111-05-05", "79221110505"), ("89221110505", "79221110505"),
     ("", None), ("abc", None), (None, None)],
)  # fmt: skip
def test_service_number_keys(raw: str | None, key: str | None) -> None:
    assert service_number_key(raw) == key


def test_keyed_digits() -> None:
    assert keyed_digits("123456", min_len=6, max_len=6) == "123456"
    for bad in ("12345", "1234567", "12 456", "12345*", "１２３４５６", "", None, "12345#"):
        assert keyed_digits(bad, min_len=6, max_len=6) is None


# --- properties -----------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_classified_without_error(raw: str) -> None:
    cid = parse_caller_id(raw)
    assert cid.kind in ("number", "withheld", "invalid")
    if cid.msisdn is not None:
        assert len(cid.msisdn) == 11 and cid.msisdn.isascii() and cid.msisdn.isdigit()
        assert cid.msisdn[0] == "7"
    if cid.kind == "number":
        assert cid.international and cid.international.isascii() and cid.international.isdigit()
        assert len(cid.international) <= 15
    else:
        assert cid.bucket() in ("withheld", "invalid")


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"9[0-9]{9}", fullmatch=True), st.sampled_from(["+7", "7", "8", "", "007", "8107"]))
def test_any_mobile_number_in_any_prefix_normalises_to_the_same(rest: str, prefix: str) -> None:
    assert normalize_msisdn(prefix + rest) == "7" + rest
    assert normalize_msisdn(f'"X" <sip:{prefix}{rest}@h>') == "7" + rest


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", max_size=14))
def test_keypad_check_and_service_normalisation_agree(digits: str) -> None:
    """The engine's ru_phone check (keyed input) and the services' normalisation accept the same
    Russian numbers the same way: both use ivr.numbering.phone."""
    assert check_digits("ru_phone", digits) == normalize_msisdn(digits)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.integers(min_value=1, max_value=12))
def test_keyed_digits_only_accepts_plain_ascii_digits(raw: str, n: int) -> None:
    got = keyed_digits(raw, min_len=1, max_len=n)
    if got is not None:
        assert got == raw and raw.isascii() and raw.isdigit() and len(raw) <= n
