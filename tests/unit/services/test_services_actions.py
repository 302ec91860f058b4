"""The action registry against docs/contracts.md, and `invoke` end to end over the real database."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dbfixtures import ANNA, CORP_VIEW, IVAN, MARIA, TestClock, demo_ids

from ivr.app.actions import REGISTRY, ActionContext, catalog, invoke
from ivr.db.session import UowFactory, make_uow_factory
from ivr.engine.events import ActionResult

CONTRACTS = Path(__file__).resolve().parents[3] / "docs" / "contracts.md"


def contract_table() -> dict[str, tuple[frozenset[str], bool]]:
    rows: dict[str, tuple[frozenset[str], bool]] = {}
    for line in CONTRACTS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([a-z_]+\.[a-z_]+)`( \*)? \| [^|]* \| ([^|]*) \|", line)
        if m:
            rows[m.group(1)] = (frozenset(s.strip() for s in m.group(3).split(",")), bool(m.group(2)))
    return rows


def test_registry_matches_the_contract_table() -> None:
    table = contract_table()
    assert len(table) >= 27
    infos = catalog()
    assert set(infos) == set(table)
    for name, (statuses, changes) in table.items():
        assert infos[name].statuses == statuses, name
        assert infos[name].changes_state is changes, name
        assert "error" not in infos[name].statuses
    assert set(REGISTRY) == set(infos)


class Call:
    """A call's variables as the engine would keep them: each result's values merged in."""

    def __init__(self, factory: Any, line: str = "operator", **start: Any) -> None:
        self.factory = factory
        self.line = line
        self.vars: dict[str, Any] = dict(start)
        self.steps = 0

    def __call__(self, name: str, key: bool = True, **args: Any) -> ActionResult:
        self.steps += 1
        ctx = ActionContext(
            call_id="call-42",
            line=self.line,
            language="ru",
            vars=dict(self.vars),
            uow_factory=self.factory,
            idempotency_key=f"call-42:{name}:{self.steps}" if key else "",
        )
        result = invoke(name, args, ctx)
        if name in REGISTRY:
            undeclared = set(result.values) - REGISTRY[name].info.values
            assert not undeclared, f"{name} set undeclared values {undeclared}"
        self.vars.update(result.values)
        return result


def assert_plain(value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            assert isinstance(item, dict) and "key" in item
            assert re.fullmatch(r"[1-9]", item["key"])
            for v in item.values():
                assert_plain(v)
    else:
        assert value is None or isinstance(value, Decimal | int | str | dt.date), type(value)
        assert not isinstance(value, float)


def test_operator_call_through_invoke(uow_factory: UowFactory) -> None:
    call = Call(uow_factory, caller_id=IVAN, caller_id_trusted=True)
    found = call("subscriber.identify")
    assert found.status == "found" and found.values["authenticated"] is True
    assert call("subscriber.verify_pin", pin="1234").status == "ok"
    results = {
        "balance.report": call("balance.report"),
        "tariff.current": call("tariff.current"),
        "tariff.alternatives": call("tariff.alternatives"),
        "options.list": call("options.list"),
        "subscriptions.list": call("subscriptions.list"),
        "bonus.balance": call("bonus.balance"),
        "bonus.catalogue": call("bonus.catalogue"),
    }
    for name, result in results.items():
        assert result.status == "ok", name
        for value in result.values.values():
            assert_plain(value)
    report = results["balance.report"].values
    assert report["balance"] == Decimal("523.40") and report["bonus_points"] == 1250
    assert set(report["charges"][0]) == {"key", "amount", "date", "title"}
    assert results["tariff.alternatives"].values["plans"][0]["key"] == "1"
    change = call("tariff.change", plan_key="2", when="next_period")
    assert (change.status, change.values["plan_name"]) == ("ok", "Максимум")
    assert call("options.set", option_key="2", on="1").status == "ok"
    assert call("options.set", option_key="2", on="0").status == "ok"
    assert call("subscriptions.cancel", subscription_key="1").values["subscription_name"] == "Гороскоп"
    assert call("number.block", days="3").status == "ok"
    assert call("number.block", days="3").status == "already_blocked"
    assert call("number.unblock").status == "ok"
    assert call("bonus.redeem", reward_key="1").values["points_left"] == 750
    assert call("bonus.transfer", to_number="79161110005", points="50").values["points_left"] == 700
    assert call("password.reset").values["sms_to"] == IVAN
    assert call("payment.promise").status == "not_eligible"
    assert call("credit.trust_enable").status == "ok"
    assert call("bonus.enrol").status == "already_enrolled"
    assert _audited(uow_factory) >= {
        "auth.pin_ok",
        "tariff.change",
        "options.set",
        "subscriptions.cancel",
        "number.block",
        "number.unblock",
        "bonus.redeem",
        "bonus.transfer",
        "password.reset",
        "credit.trust_enable",
    }


def _audited(factory: UowFactory) -> set[str]:
    """Actions audited for call-42; every record carries the call id and the line, and parses."""
    import json

    from sqlalchemy import select

    from ivr.db.models import AuditRecord

    with factory() as uow:
        records = [(r.action, r.call_id, r.line, r.detail) for r in uow.session.scalars(select(AuditRecord))]
    ours = [r for r in records if r[1] == "call-42"]
    assert all(line in ("operator", "loyalty") for _, _, line, _ in ours)
    for _, _, _, detail in ours:
        json.loads(detail)
    return {action for action, _, _, _ in ours}


def test_identify_from_an_untrusted_caller_id_is_not_authenticated(uow_factory: UowFactory) -> None:
    call = Call(uow_factory, caller_id=IVAN, caller_id_trusted=False)
    assert call("subscriber.identify").values["authenticated"] is False
    call = Call(uow_factory, caller_id=IVAN, caller_id_trusted=True)
    assert call("subscriber.identify", number=MARIA).values["authenticated"] is False  # typed, not network
    assert call("subscriber.identify", number="79990000000").status == "unknown"


def test_pin_failures_commit_through_invoke(
    uow_factory: UowFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    call = Call(uow_factory, caller_id="")
    lefts = [call("subscriber.verify_pin", number=IVAN, pin="0000").values["attempts_left"] for _ in range(4)]
    assert lefts == [4, 3, 2, 1]
    locked = call("subscriber.verify_pin", number=IVAN, pin="0000")
    assert locked.status == "locked"
    assert isinstance(locked.values["locked_until"], dt.datetime)
    assert locked.values["locked_minutes"] == 60
    assert call("subscriber.verify_pin", number=IVAN, pin="1234").status == "locked"
    assert "0000" not in caplog.text and "1234" not in caplog.text


def test_loyalty_call_through_invoke(uow_factory: UowFactory) -> None:
    call = Call(uow_factory, line="loyalty")
    found = call("card.identify", number=ANNA)
    assert found.status == "found" and set(found.values) == {
        "card_id",
        "account_id",
        "subscriber_id",
        "card_last4",
    }
    assert call("loyalty.balance").values["points"] == 3400
    listed = call("card.list")
    assert listed.values["count"] == 3 and set(listed.values["cards"][0]) == {"key", "last4", "status"}
    assert call("card.block").status == "ok"  # default: the identified card
    assert call("card.block").status == "already_blocked"
    assert call("card.unblock", card_key="1").status == "ok"
    assert call("card.register", card_number="4006381333931").values["count"] == 4
    reissue = call("card.reissue", card_key="3")
    assert reissue.status == "ok" and len(reissue.values["new_card_last4"]) == 4
    assert call("bonus.catalogue").values["rewards"][0]["name"] == "Кофе в подарок"
    assert call("bonus.redeem", reward_key="1").values["points_left"] == 3100
    assert _audited(uow_factory) >= {
        "card.block",
        "card.unblock",
        "card.register",
        "card.reissue",
        "bonus.redeem",
    }


def test_forbidden_maps_onto_contract_statuses(uow_factory: UowFactory) -> None:
    call = Call(uow_factory, caller_id=CORP_VIEW, caller_id_trusted=True)
    call("subscriber.identify")
    assert call("tariff.change", plan_code="biz_pro").status == "forbidden"
    assert call("options.set", option_key="1", on=True).status == "forbidden"
    assert call("number.block", days=2).status == "forbidden"
    promise = call("payment.promise")
    assert (promise.status, promise.values["reason"]) == ("not_eligible", "forbidden")
    assert call("credit.trust_enable").status == "not_eligible"
    assert call("bonus.redeem", reward_key="1").status == "not_enrolled"
    assert call("bonus.transfer", to_number=IVAN, points=5).status == "not_enrolled"
    assert call("bonus.enrol").status == "already_enrolled"  # the company's account is enrolled


def test_enrol_refusal_has_no_contract_status_and_goes_to_the_operator(uow_factory: UowFactory) -> None:
    from ivr.db.models import Account

    _, account_id = demo_ids(uow_factory, CORP_VIEW)
    with uow_factory(write=True) as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        account.bonus_enrolled_at = None
        uow.commit()
    call = Call(uow_factory, caller_id=CORP_VIEW, caller_id_trusted=True)
    call("subscriber.identify")
    assert call("bonus.enrol").status == "error"


def test_retry_with_the_same_key_returns_the_first_result(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, MARIA)
    ctx = ActionContext(
        "call-5", "operator", "ru", {"subscriber_id": sub_id}, uow_factory, "call-5:promise:1"
    )
    first = invoke("payment.promise", {}, ctx)
    second = invoke("payment.promise", {}, ctx)
    assert first == second
    assert first.status == "ok"
    report = Call(uow_factory, subscriber_id=sub_id)("balance.report")
    assert report.values["balance"] == Decimal("76.55")


def test_invoke_never_raises(uow_factory: UowFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert Call(uow_factory)("no.such.action").status == "error"
    assert Call(uow_factory)("balance.report").status == "error"  # no subscriber_id in the call
    assert Call(uow_factory, subscriber_id=999999)("balance.report").status == "error"
    assert (
        Call(uow_factory, subscriber_id=1)("tariff.change", plan_code="basic", when="someday").status
        == "error"
    )
    assert Call(uow_factory, subscriber_id=1)("options.set", option_key="1", on="maybe").status == "error"
    assert any(r.levelno == logging.ERROR and "failed" in r.getMessage() for r in caplog.records)


def test_database_down_is_an_error_status(tmp_path: Path, clock: TestClock) -> None:
    factory = make_uow_factory(f"sqlite:///{tmp_path / 'missing-dir' / 'x.sqlite3'}", clock=clock)
    try:
        result = Call(factory, caller_id=IVAN)("subscriber.identify")
    finally:
        factory.dispose()
    assert result.status == "error"


def test_values_are_what_the_contract_lists(uow_factory: UowFactory) -> None:
    call = Call(uow_factory, caller_id=IVAN, caller_id_trusted=True)
    expect: Mapping[str, set[str]] = {
        "subscriber.identify": {"subscriber_id", "account_id", "access_level", "msisdn", "pin_set"},
        "balance.report": {
            "balance",
            "credit_limit",
            "available",
            "minutes_left",
            "sms_left",
            "data_mb_left",
            "bonus_points",
            "charges",
            "payments",
        },
        "tariff.current": {"plan_code", "plan_name", "monthly_fee", "next_billing_date"},
        "bonus.balance": {"points", "expiring_points", "expiry_date"},
    }
    for name, keys in expect.items():
        assert keys <= set(call(name).values), name


@pytest.mark.parametrize("line", ["operator", "loyalty"])
def test_shipped_trees_validate_against_the_real_catalog(line: str) -> None:
    from ivr.trees.loader import load_tree

    path = CONTRACTS.parents[1] / "prompts" / f"{line}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not there")
    load_tree(path, catalog())  # raises TreeInvalid listing every mismatch


def test_errors_are_logged_with_the_call_id(uow_factory: UowFactory) -> None:
    from ivr.logs import CallIdFilter

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(CallIdFilter())
    logger = logging.getLogger("ivr.app.actions")
    logger.addHandler(handler)
    try:
        Call(uow_factory)("balance.report")  # no subscriber: error
    finally:
        logger.removeHandler(handler)
    errors = [r for r in records if r.levelno == logging.ERROR]
    assert errors and all(getattr(r, "call_id", None) == "call-42" for r in errors)
