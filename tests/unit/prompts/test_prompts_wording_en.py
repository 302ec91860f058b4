"""English wording tables (hand-written expectations)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ivr.prompts import wording_en as en

J = en.join

NUMBERS = [
    (0, "zero"),
    (1, "one"),
    (2, "two"),
    (5, "five"),
    (11, "eleven"),
    (12, "twelve"),
    (13, "thirteen"),
    (14, "fourteen"),
    (19, "nineteen"),
    (20, "twenty"),
    (21, "twenty-one"),
    (22, "twenty-two"),
    (25, "twenty-five"),
    (40, "forty"),
    (99, "ninety-nine"),
    (100, "one hundred"),
    (101, "one hundred and one"),
    (111, "one hundred and eleven"),
    (112, "one hundred and twelve"),
    (120, "one hundred and twenty"),
    (999, "nine hundred and ninety-nine"),
    (1000, "one thousand"),
    (1001, "one thousand and one"),
    (1010, "one thousand and ten"),
    (1100, "one thousand one hundred"),
    (1234, "one thousand two hundred and thirty-four"),
    (2000, "two thousand"),
    (5000, "five thousand"),
    (21000, "twenty-one thousand"),
    (100000, "one hundred thousand"),
    (101000, "one hundred and one thousand"),
    (1000000, "one million"),
    (1000001, "one million and one"),
    (2500000, "two million five hundred thousand"),
    (
        123456789,
        "one hundred and twenty-three million four hundred and fifty-six thousand "
        "seven hundred and eighty-nine",
    ),
    (
        999999999,
        "nine hundred and ninety-nine million nine hundred and ninety-nine thousand "
        "nine hundred and ninety-nine",
    ),
    (1000000000, "one billion"),
    (-1, "minus one"),
    (-250, "minus two hundred and fifty"),
]


@pytest.mark.parametrize(("n", "expected"), NUMBERS)
def test_number(n: int, expected: str) -> None:
    assert J(en.number(n)) == expected


MONEY = [
    ("0", "zero roubles"),
    ("1", "one rouble"),
    ("2", "two roubles"),
    ("5", "five roubles"),
    ("11", "eleven roubles"),
    ("21", "twenty-one roubles"),
    ("101", "one hundred and one roubles"),
    ("1000", "one thousand roubles"),
    ("2000", "two thousand roubles"),
    ("21000", "twenty-one thousand roubles"),
    ("1000000", "one million roubles"),
    ("0.01", "one kopeck"),
    ("0.02", "two kopecks"),
    ("0.21", "twenty-one kopecks"),
    ("1.01", "one rouble one kopeck"),
    ("12.50", "twelve roubles fifty kopecks"),
    ("123.45", "one hundred and twenty-three roubles forty-five kopecks"),
    ("-1", "minus one rouble"),
    ("-0.01", "minus one kopeck"),
    ("-123.45", "minus one hundred and twenty-three roubles forty-five kopecks"),
    ("0.005", "one kopeck"),
]


@pytest.mark.parametrize(("amount", "expected"), MONEY)
def test_money(amount: str, expected: str) -> None:
    assert J(en.money(Decimal(amount))) == expected


COUNTS = [
    (0, "point", "zero points"),
    (1, "point", "one point"),
    (2, "point", "two points"),
    (21, "point", "twenty-one points"),
    (1, "minute", "one minute"),
    (300, "minute", "three hundred minutes"),
    (1, "sms", "one message"),
    (50, "sms", "fifty messages"),
    (1, "day", "one day"),
    (30, "day", "thirty days"),
    (-1, "day", "minus one day"),
]


@pytest.mark.parametrize(("n", "noun_key", "expected"), COUNTS)
def test_count(n: int, noun_key: str, expected: str) -> None:
    assert J(en.count(n, noun_key)) == expected


@pytest.mark.parametrize(
    ("mb", "expected"),
    [
        (1, "one megabyte"),
        (500, "five hundred megabytes"),
        (1024, "one gigabyte"),
        (1536, "one gigabyte five hundred and twelve megabytes"),
        (10240, "ten gigabytes"),
    ],
)
def test_megabytes(mb: int, expected: str) -> None:
    assert J(en.megabytes(mb)) == expected


DATES = [
    ("2026-12-25", "December twenty-fifth"),
    ("2026-01-01", "January first"),
    ("2026-02-02", "February second"),
    ("2026-03-03", "March third"),
    ("2026-04-11", "April eleventh"),
    ("2026-05-12", "May twelfth"),
    ("2026-06-13", "June thirteenth"),
    ("2026-07-20", "July twentieth"),
    ("2026-08-21", "August twenty-first"),
    ("2026-09-22", "September twenty-second"),
    ("2026-10-23", "October twenty-third"),
    ("2026-11-30", "November thirtieth"),
    ("2026-12-31", "December thirty-first"),
]


@pytest.mark.parametrize(("iso", "expected"), DATES)
def test_date(iso: str, expected: str) -> None:
    assert J(en.date(dt.date.fromisoformat(iso))) == expected


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("79221110505", "plus seven, nine two two, one one one, zero five, zero five"),
        ("88005500500", "eight, eight zero zero, five five zero, zero five, zero zero"),
        ("0505", "zero five, zero five"),
    ],
)
def test_phone(digits: str, expected: str) -> None:
    assert J(en.phone(digits)) == expected


def test_digits() -> None:
    assert J(en.digits("4021")) == "four zero two one"
