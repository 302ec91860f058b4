"""SMS outbox delivery: the file sender, retries of a failing sender, the log sender never logs a text."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from dbfixtures import ANNA, IVAN, demo_ids, run_op
from sqlalchemy import select

from ivr.app.sms import FileSender, LogSender, deliver_pending, sender_from_settings
from ivr.config import Settings
from ivr.db.models import EmailOutbox, SmsOutbox
from ivr.db.session import UowFactory
from ivr.services import bonus, outbox, password
from ivr.services.outbox import OutgoingSms


class FlakySender:
    def __init__(self, fail_for: set[str]) -> None:
        self.fail_for = fail_for
        self.sent: list[OutgoingSms] = []

    def send(self, sms: OutgoingSms) -> None:
        if sms.msisdn in self.fail_for:
            raise ConnectionError("gateway down")
        self.sent.append(sms)


def test_file_sender_delivers_and_marks_sent(uow_factory: UowFactory, tmp_path: Path) -> None:
    run_op(uow_factory, password.reset_password, demo_ids(uow_factory, IVAN)[0])
    run_op(uow_factory, bonus.redeem, demo_ids(uow_factory, ANNA)[0], reward_code="coffee")
    path = tmp_path / "sms" / "outbox.log"
    assert deliver_pending(uow_factory, FileSender(path)) == 2
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(m["to"], m["kind"]) for m in lines] == [(IVAN, "password_reset"), (ANNA, "voucher")]
    assert "Временный пароль" in lines[0]["text"]
    assert deliver_pending(uow_factory, FileSender(path)) == 0  # nothing twice
    with uow_factory() as uow:
        assert all(s.sent_at is not None for s in uow.session.scalars(select(SmsOutbox)))


def test_a_failing_sms_is_retried_and_does_not_stop_the_others(uow_factory: UowFactory) -> None:
    run_op(uow_factory, password.reset_password, demo_ids(uow_factory, IVAN)[0])
    run_op(uow_factory, bonus.redeem, demo_ids(uow_factory, ANNA)[0], reward_code="coffee")
    flaky = FlakySender({IVAN})
    assert deliver_pending(uow_factory, flaky) == 1
    assert [s.msisdn for s in flaky.sent] == [ANNA]
    for _ in range(outbox.MAX_ATTEMPTS - 1):
        deliver_pending(uow_factory, flaky)
    with uow_factory() as uow:
        stuck = uow.session.scalars(select(SmsOutbox).where(SmsOutbox.msisdn == IVAN)).one()
        assert (stuck.sent_at, stuck.attempts) == (None, outbox.MAX_ATTEMPTS)
        assert outbox.pending(uow) == []  # given up after MAX_ATTEMPTS
    assert deliver_pending(uow_factory, FlakySender(set())) == 0


def test_log_sender_never_logs_the_text(uow_factory: UowFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run_op(uow_factory, password.reset_password, demo_ids(uow_factory, IVAN)[0])
    with uow_factory() as uow:
        text = uow.session.scalars(select(SmsOutbox)).one().text
    assert deliver_pending(uow_factory, LogSender()) == 1
    temp = text.split(": ", 1)[1].split(".", 1)[0]
    assert "sent to 79161234567" in caplog.text
    assert temp not in caplog.text


def test_sender_from_settings(tmp_path: Path) -> None:
    file_sender = sender_from_settings(Settings(home=tmp_path))
    assert isinstance(file_sender, FileSender)
    assert file_sender.path == tmp_path / "var" / "sms" / "outbox.log"
    assert isinstance(sender_from_settings(Settings(home=tmp_path, sms_sender="log")), LogSender)


def test_pump_delivers_after_a_kick_and_on_stop(uow_factory: UowFactory, tmp_path: Path) -> None:
    from ivr.app.sms import SmsPump

    path = tmp_path / "outbox.log"
    pump = SmsPump(uow_factory, FileSender(path), interval=3600)
    pump.start()
    run_op(uow_factory, password.reset_password, demo_ids(uow_factory, IVAN)[0])
    pump.kick()
    run_op(uow_factory, bonus.redeem, demo_ids(uow_factory, ANNA)[0], reward_code="coffee")
    pump.stop()  # delivers whatever is still queued, then joins
    assert pump.sent == 2
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_statements_by_email_are_delivered_by_the_pump(uow_factory: UowFactory, tmp_path: Path) -> None:
    from ivr.app.sms import FileMailSender, SmsPump
    from ivr.services import statements

    mail = tmp_path / "mail.log"
    pump = SmsPump(
        uow_factory, FileSender(tmp_path / "sms.log"), interval=3600, mail_sender=FileMailSender(mail)
    )
    pump.start()
    run_op(uow_factory, statements.order_statement, demo_ids(uow_factory, IVAN)[0], "month")
    pump.kick()
    pump.stop()
    (sent,) = [json.loads(line) for line in mail.read_text(encoding="utf-8").splitlines()]
    assert (sent["to"], sent["kind"]) == ("ivan.petrov@example.com", "statement")
    assert sent["subject"].startswith("Детализация расходов")
    with uow_factory() as uow:
        assert all(m.sent_at is not None for m in uow.session.scalars(select(EmailOutbox)))


def test_one_kick_delivers_a_burst_larger_than_a_run(uow_factory: UowFactory, tmp_path: Path) -> None:
    # 250 SMS (two and a half runs of BATCH) and one kick: all go out now, not one run per wake-up.
    import threading

    from ivr.app.sms import BATCH, SmsPump

    burst = 2 * BATCH + BATCH // 2
    with uow_factory(write=True) as uow:
        for n in range(burst):
            row = SmsOutbox(msisdn="79161234567", text=f"burst {n}", kind="test", created_at=uow.now())
            uow.session.add(row)
        uow.commit()
    done = threading.Event()

    class Sender(FlakySender):
        def send(self, sms: OutgoingSms) -> None:
            super().send(sms)
            if len(self.sent) == burst:
                done.set()

    sender = Sender(set())
    pump = SmsPump(uow_factory, sender, interval=3600)
    pump.start()
    pump.kick()
    try:
        assert done.wait(60), f"{len(sender.sent)} of {burst} sent after one kick"
    finally:
        pump.stop()
    assert sorted(s.text for s in sender.sent) == sorted(f"burst {n}" for n in range(burst))
