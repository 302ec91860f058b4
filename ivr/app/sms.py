"""SMS delivery from the outbox through a pluggable sender.

Services queue SMS in the `sms_outbox` table in the same transaction as the change they report;
`deliver_pending(uow_factory, sender)` hands them to a sender and marks them sent. Senders:
- `FileSender` (default, settings.sms_sender = "file"): appends one line per SMS to var/sms/outbox.log,
  the demo's stand-in for an SMS gateway. The texts there may contain temporary passwords: that file is
  the delivery channel (it is the SMS), not a log.
- `LogSender` ("log"): logs that an SMS went out, to whom and its kind, never its text.
A real gateway is one more class with `send(sms)`.

E-mail (detailed statements) goes the same way from the e-mail outbox: `FileMailSender` appends to
var/mail/outbox.log, `LogMailSender` logs the kind only. The pump delivers both.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ivr.db.models import EmailOutbox
from ivr.db.session import UowFactory
from ivr.services import outbox
from ivr.services.outbox import OutgoingEmail, OutgoingSms

if TYPE_CHECKING:
    from ivr.config import Settings

log = logging.getLogger(__name__)


class SmsSender(Protocol):
    def send(self, sms: OutgoingSms) -> None:
        """Deliver one SMS or raise."""


class FileSender:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, sms: OutgoingSms) -> None:
        line = json.dumps(
            {
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "id": sms.id,
                "to": sms.msisdn,
                "kind": sms.kind,
                "text": sms.text,
            },
            ensure_ascii=False,
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")


class LogSender:
    def send(self, sms: OutgoingSms) -> None:
        log.info("sms %s sent to %s kind=%s (%d characters)", sms.id, sms.msisdn, sms.kind, len(sms.text))


class MailSender(Protocol):
    def send(self, mail: OutgoingEmail) -> None:
        """Deliver one e-mail or raise."""


class FileMailSender:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, mail: OutgoingEmail) -> None:
        record = {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "id": mail.id,
            "to": mail.address,
            "kind": mail.kind,
            "subject": mail.subject,
            "body": mail.body,
        }
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")


class LogMailSender:
    def send(self, mail: OutgoingEmail) -> None:
        log.info("email %s sent kind=%s (%d characters)", mail.id, mail.kind, len(mail.body))


def mail_sender_from_settings(settings: Settings) -> MailSender:
    if settings.sms_sender == "log":
        return LogMailSender()
    return FileMailSender(settings.var / "mail" / "outbox.log")


def deliver_pending_mail(uow_factory: UowFactory, sender: MailSender, limit: int = 100) -> int:
    """Send the e-mail that is waiting, as `deliver_pending` does the SMS."""
    sent = 0
    with uow_factory(write=True) as uow:
        for mail in outbox.pending_email(uow, limit):
            try:
                sender.send(mail)
            except Exception:
                log.exception("email %s could not be sent", mail.id)
                outbox.mark_failed(uow, mail.id, EmailOutbox)
                continue
            outbox.mark_sent(uow, mail.id, EmailOutbox)
            sent += 1
        uow.commit()
    return sent


def sender_from_settings(settings: Settings) -> SmsSender:
    if settings.sms_sender == "log":
        return LogSender()
    return FileSender(settings.var / "sms" / "outbox.log")


def deliver_pending(uow_factory: UowFactory, sender: SmsSender, limit: int = 100) -> int:
    """Send what is waiting. Returns how many were sent. A failing SMS is retried on a later run (up to
    outbox.MAX_ATTEMPTS), the others still go out."""
    sent = 0
    with uow_factory(write=True) as uow:
        for sms in outbox.pending(uow, limit):
            try:
                sender.send(sms)
            except Exception:
                log.exception("sms %s to %s could not be sent", sms.id, sms.msisdn)
                outbox.mark_failed(uow, sms.id)
                continue
            outbox.mark_sent(uow, sms.id)
            sent += 1
        uow.commit()
    return sent


BATCH = 100  # messages per delivery run (one transaction holds their row locks while they are sent)


class SmsPump:
    """Delivers the outbox in a background thread: at once after `kick()` (the session's invoker kicks it
    after every action that writes) and every `interval` seconds anyway. `stop()` delivers what is left and
    joins. One per process, beside the uow factory:

        pump = SmsPump(uow_factory, sender_from_settings(settings)); pump.start()
        ... result = invoke(...); if action.writes: pump.kick()
        pump.stop()
    """

    def __init__(
        self,
        uow_factory: UowFactory,
        sender: SmsSender,
        interval: float = 30.0,
        mail_sender: MailSender | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.sender = sender
        self.mail_sender = mail_sender
        self.interval = interval
        self.sent = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sms-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._deliver()
        self._deliver()  # whatever was queued while the last run was going

    def _deliver(self) -> None:
        """Runs of at most BATCH messages until a run is not full: a burst goes out now, not one batch per
        wake-up (every `interval` s), and each run's transaction stays short."""
        try:
            self._drain(lambda limit: deliver_pending(self.uow_factory, self.sender, limit))
            mail = self.mail_sender
            if mail is not None:
                self._drain(lambda limit: deliver_pending_mail(self.uow_factory, mail, limit))
        except Exception:
            log.exception("sms delivery run failed")

    def _drain(self, run: Callable[[int], int]) -> None:
        while True:
            sent = run(BATCH)
            self.sent += sent
            if sent < BATCH or self._stopping:
                return
