"""The loyalty programme's mailings: the current choice, subscribing and unsubscribing, and the refusals,
on SQLite and PostgreSQL."""

from __future__ import annotations

from dbfixtures import ANNA, IVAN, demo_ids, run_op
from sqlalchemy import select

from ivr.db.models import AuditRecord
from ivr.db.session import UowFactory
from ivr.services import mailings


def _choice(factory: UowFactory, msisdn: str) -> tuple[bool, bool]:
    with factory() as uow:
        choice = mailings.mailing_choice(uow, demo_ids(factory, msisdn)[0])
    return choice.mailing_sms, choice.mailing_email


def test_subscribe_and_unsubscribe_by_sms(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, ANNA)
    assert _choice(uow_factory, ANNA) == (False, False)
    assert run_op(uow_factory, mailings.set_mailing, sub_id, "sms", True).status == "ok"
    assert _choice(uow_factory, ANNA) == (True, False)
    assert run_op(uow_factory, mailings.set_mailing, sub_id, "sms", True).status == "already"
    assert run_op(uow_factory, mailings.set_mailing, sub_id, "sms", False).status == "ok"
    assert _choice(uow_factory, ANNA) == (False, False)
    with uow_factory() as uow:
        assert [a.action for a in uow.session.scalars(select(AuditRecord))][-2:] == ["mailing.set"] * 2


def test_email_mailings_need_an_address_on_file(uow_factory: UowFactory) -> None:
    anna, _ = demo_ids(uow_factory, ANNA)  # no e-mail on file
    assert run_op(uow_factory, mailings.set_mailing, anna, "email", True).status == "no_email"
    assert _choice(uow_factory, ANNA) == (False, False)
    ivan, _ = demo_ids(uow_factory, IVAN)  # has one
    assert run_op(uow_factory, mailings.set_mailing, ivan, "email", True).status == "ok"
    assert _choice(uow_factory, IVAN) == (False, True)


def test_an_unknown_channel_and_idempotency(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, ANNA)
    assert run_op(uow_factory, mailings.set_mailing, sub_id, "fax", True).status == "invalid_channel"
    a = run_op(uow_factory, mailings.set_mailing, sub_id, "sms", True, key="c:m:1")
    b = run_op(uow_factory, mailings.set_mailing, sub_id, "sms", True, key="c:m:1")
    assert a == b and a.status == "ok"
