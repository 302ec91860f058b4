"""Properties: any sequence of points operations keeps the ledger invariants; promised amounts cover the
debt; results survive the idempotency record's encoding; card numbers made here are valid."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from dbfixtures import ANNA, IVAN, NATALIA, TestClock, demo_ids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ivr.db.models import Account, PointsEntry
from ivr.db.session import UowFactory
from ivr.numbering.cards import with_ean13_check_digit as ean13
from ivr.services import balance, bonus, cards, tariffs
from ivr.services.common import decode_result, encode_result, menu_index

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(1, 3000), st.integers(1, 400)),
        st.tuples(st.just("redeem"), st.sampled_from(["min100", "sms50", "gb1"]), st.just(0)),
        st.tuples(st.just("give"), st.integers(-10, 4000), st.just(0)),
        st.tuples(st.just("take"), st.integers(1, 4000), st.just(0)),
        st.tuples(st.just("wait"), st.integers(1, 120), st.just(0)),
    ),
    max_size=12,
)


def _invariants(factory: UowFactory, account_id: int) -> None:
    with factory() as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        entries = uow.session.execute(
            select(
                func.sum(PointsEntry.delta), func.sum(PointsEntry.remaining), func.min(PointsEntry.remaining)
            ).where(PointsEntry.account_id == account_id)
        ).one()
        live = bonus.live_points(uow, account_id)
        points = account.points
    assert points == entries[0] == entries[1]
    assert entries[2] >= 0
    assert 0 <= live <= points


@pytest.mark.parametrize("db_kind", ["sqlite"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_points_ledger_invariants(
    uow_factory: UowFactory, clock: TestClock, operations: list[tuple[str, object, int]]
) -> None:
    ivan, ivan_account = demo_ids(uow_factory, IVAN)
    natalia, natalia_account = demo_ids(uow_factory, NATALIA)
    for kind, a, b in operations:
        with uow_factory(write=True) as uow:
            if kind == "grant":
                bonus.grant_points(
                    uow, ivan_account, int(str(a)), expires_at=clock.now + dt.timedelta(days=b)
                )
            elif kind == "redeem":
                result = bonus.redeem(uow, ivan, reward_code=str(a))
                assert result.status in ("ok", "insufficient_points")
            elif kind == "give":
                assert bonus.transfer(uow, ivan, NATALIA, a).status in (
                    "ok",
                    "insufficient_points",
                    "invalid_amount",
                )
            elif kind == "take":
                assert bonus.transfer(uow, natalia, IVAN, a).status in ("ok", "insufficient_points")
            else:
                clock.advance(days=int(str(a)))
            uow.commit()
        _invariants(uow_factory, ivan_account)
        _invariants(uow_factory, natalia_account)


@given(debt=st.decimals(min_value=Decimal("-300.00"), max_value=Decimal("49.99"), places=2))
def test_promised_amount_covers_the_debt(debt: Decimal) -> None:
    amount = balance._promise_amount(debt)
    assert amount >= balance.PROMISE_MIN_AMOUNT
    assert amount % 50 == 0
    assert debt + amount >= Decimal("50.00")
    assert amount - 50 < max(-debt + 50, balance.PROMISE_MIN_AMOUNT)


@given(
    amount=st.decimals(min_value=Decimal("-99999.99"), max_value=Decimal("99999.99"), places=2),
    day=st.dates(),
    name=st.text(max_size=20),
)
def test_results_survive_the_idempotency_record(amount: Decimal, day: dt.date, name: str) -> None:
    result = tariffs.PlanChange(status="ok", plan_name=name, effective_date=day, fee=amount)
    assert decode_result(tariffs.PlanChange, encode_result(result)) == result
    promise = balance.PromiseResult(status="ok", amount=amount, until=day)
    assert decode_result(balance.PromiseResult, encode_result(promise)) == promise


@given(digits=st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_ean13_numbers_validate_and_one_wrong_digit_does_not(digits: str) -> None:
    number = ean13(digits)
    assert cards.valid_card_number(number)
    wrong = number[:12] + str((int(number[12]) + 1) % 10)
    assert not cards.valid_card_number(wrong)


@given(key=st.one_of(st.text(max_size=3), st.integers(-5, 15), st.none()))
def test_menu_index_accepts_only_one_to_nine(key: object) -> None:
    index = menu_index(key)
    assert index == -1 or (str(key).strip() in "123456789" and index == int(str(key).strip()) - 1)


def test_demo_points_ledgers_balance_from_the_start(uow_factory: UowFactory) -> None:
    for number in (IVAN, NATALIA, ANNA):
        _invariants(uow_factory, demo_ids(uow_factory, number)[1])
