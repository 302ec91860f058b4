"""SMS delivery from the outbox through a pluggable sender.

Services queue SMS in the `sms_outbox` table in the same transaction as the change they report;
`deliver_pending(uow_factory, sender)` hands them to a sender and marks them sent. Senders:
- `FileSender` (default, settings.sms_sender = "file"): appends one line per SMS to var/sms/outbox.log,
  the demo's stand-in for an SMS gateway. The texts there may contain temporary passwords: that file is
  the delivery channel (it is the SMS), not a log.
- `LogSender` ("log"): logs that an SMS went out, to whom and its kind, never its text.
A real gateway is one more class with `send(sms)`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ivr.db.session import UowFactory
from ivr.services import outbox
from ivr.services.outbox import OutgoingSms

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
