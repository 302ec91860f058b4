"""Web password reset by phone and the web login lockout it clears."""

from __future__ import annotations

import logging
import re

import pytest
from dbfixtures import IVAN, MARIA, TestClock, demo_ids, run_op
from sqlalchemy import select

from ivr.db.models import AuditRecord, SmsOutbox, Subscriber
from ivr.db.session import UowFactory
from ivr.services import password


def _sms_password(factory: UowFactory) -> str:
    with factory() as uow:
        texts = [s.text for s in uow.session.scalars(select(SmsOutbox).order_by(SmsOutbox.id)).all()]
    match = re.search(r": (\S+)\. ", texts[-1])
    assert match, texts[-1]
    return match.group(1)


def _lock_web(factory: UowFactory) -> None:
    for _ in range(password.MAX_WEB_FAILURES):
        run_op(factory, password.web_login, IVAN, "not-the-password")


def test_reset_sends_a_temporary_password_by_sms_and_keeps_only_its_hash(
    uow_factory: UowFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sub_id, _ = demo_ids(uow_factory, IVAN)
    result = run_op(uow_factory, password.reset_password, sub_id)
    assert result.status == "ok"
    assert result.sms_to == IVAN
    temp = _sms_password(uow_factory)
    assert len(temp) == password.TEMP_PASSWORD_LENGTH
    with uow_factory() as uow:
        sub = uow.session.get(Subscriber, sub_id)
        assert sub is not None
        assert sub.web_must_change is True
        assert sub.web_password_hash is not None and temp not in sub.web_password_hash
        details = [a.detail for a in uow.session.scalars(select(AuditRecord)).all()]
        sms = uow.session.scalars(select(SmsOutbox)).one()
        assert (sms.msisdn, sms.kind, sms.sent_at) == (IVAN, "password_reset", None)
    assert all(temp not in d for d in details)
    assert temp not in caplog.text
    assert temp not in repr(result)


def test_temporary_password_signs_in_and_must_be_changed(uow_factory: UowFactory) -> None:
    run_op(uow_factory, password.reset_password, demo_ids(uow_factory, IVAN)[0])
    temp = _sms_password(uow_factory)
    assert run_op(uow_factory, password.web_login, IVAN, temp).status == "must_change"
    assert run_op(uow_factory, password.change_web_password, IVAN, temp, "short").status == "weak_password"
    assert run_op(uow_factory, password.change_web_password, IVAN, temp, "a-new-long-one").status == "ok"
    assert run_op(uow_factory, password.web_login, IVAN, "a-new-long-one").status == "ok"
    assert run_op(uow_factory, password.web_login, IVAN, temp).status == "wrong"


def test_five_wrong_web_passwords_lock_and_a_reset_unlocks(uow_factory: UowFactory) -> None:
    lefts = [run_op(uow_factory, password.web_login, IVAN, "nope").attempts_left for _ in range(4)]
    assert lefts == [4, 3, 2, 1]
    assert run_op(uow_factory, password.web_login, IVAN, "nope").status == "locked"
    run_op(uow_factory, password.reset_password, demo_ids(uow_factory, IVAN)[0])
    temp = _sms_password(uow_factory)
    assert run_op(uow_factory, password.web_login, IVAN, temp).status == "must_change"


def test_locked_web_account_refuses_even_the_right_password(uow_factory: UowFactory) -> None:
    run_op(uow_factory, password.reset_password, demo_ids(uow_factory, IVAN)[0])
    temp = _sms_password(uow_factory)
    _lock_web(uow_factory)
    assert run_op(uow_factory, password.web_login, IVAN, temp).status == "locked"


def test_daily_reset_limit(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    statuses = []
    for _ in range(password.RESETS_PER_DAY + 1):
        statuses.append(run_op(uow_factory, password.reset_password, sub_id).status)
        clock.advance(hours=1)
    assert statuses == ["ok"] * password.RESETS_PER_DAY + ["limit_reached"]
    with uow_factory() as uow:
        assert len(uow.session.scalars(select(SmsOutbox)).all()) == password.RESETS_PER_DAY
    clock.advance(hours=22)  # the first reset is now more than 24 hours ago
    assert run_op(uow_factory, password.reset_password, sub_id).status == "ok"


def test_no_web_account_and_unknown(uow_factory: UowFactory) -> None:
    assert run_op(uow_factory, password.reset_password, demo_ids(uow_factory, MARIA)[0]).status == (
        "no_web_account"
    )
    assert run_op(uow_factory, password.web_login, MARIA, "x").status == "no_web_account"
    assert run_op(uow_factory, password.web_login, "79990000000", "x").status == "unknown"


def test_reset_is_idempotent_per_key(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    a = run_op(uow_factory, password.reset_password, sub_id, key="call-1:reset:1")
    b = run_op(uow_factory, password.reset_password, sub_id, key="call-1:reset:1")
    assert a == b
    with uow_factory() as uow:
        assert len(uow.session.scalars(select(SmsOutbox)).all()) == 1


# ---- web account registration by phone ---------------------------------------------------------------


def test_registration_creates_the_web_account_with_a_temporary_password(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, MARIA)
    result = run_op(uow_factory, password.register_web_account, sub_id)
    assert (result.status, result.sms_to, result.login) == ("ok", MARIA, MARIA)
    with uow_factory() as uow:
        sms = uow.session.scalars(select(SmsOutbox).order_by(SmsOutbox.id.desc())).first()
        assert sms is not None and sms.kind == "web_registration" and sms.msisdn == MARIA
        text = sms.text
        assert [a.action for a in uow.session.scalars(select(AuditRecord))][-1] == "web.registered"
    assert f"Логин: {MARIA}" in text
    temp = re.search(r"пароль: (\S+)\. ", text)
    assert temp, text
    # The web account now exists and signs in with the temporary password, which must be changed.
    assert run_op(uow_factory, password.web_login, MARIA, temp.group(1)).status == "must_change"
    assert run_op(uow_factory, password.reset_password, sub_id).status == "ok"  # and can be reset


def test_registration_of_an_existing_web_account_is_refused(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    result = run_op(uow_factory, password.register_web_account, sub_id)
    assert (result.status, result.sms_to) == ("already_registered", None)
    with uow_factory() as uow:
        assert uow.session.scalars(select(SmsOutbox)).all() == []


def test_registration_is_idempotent_per_key(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, MARIA)
    a = run_op(uow_factory, password.register_web_account, sub_id, key="call-9:register:1")
    b = run_op(uow_factory, password.register_web_account, sub_id, key="call-9:register:1")
    assert a == b and a.status == "ok"
    with uow_factory() as uow:
        assert len(uow.session.scalars(select(SmsOutbox)).all()) == 1
