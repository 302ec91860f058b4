"""Several server nodes, one PostgreSQL: the SMS and e-mail outboxes are delivered by every node's pump at
once, and each message goes out once. Each "node" is its own engine (its own connection pool), as two
`ivr serve` processes would have; the pumps run in threads at the same time.

Claims are `FOR UPDATE SKIP LOCKED` (ivr.services.outbox): a pump takes the messages no other pump holds.
The one instant where a message may go out twice: a node that dies after the gateway took it and before
its commit (the last test) — at least once, never lost."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from dbfixtures import TestClock
from multinode import Nodes
from sqlalchemy import func, select

from ivr.app.sms import SmsPump, deliver_pending
from ivr.db.models import EmailOutbox, SmsOutbox
from ivr.db.session import UowFactory, make_uow_factory
from ivr.services import outbox
from ivr.services.common import queue_email, queue_sms
from ivr.services.outbox import OutgoingEmail, OutgoingSms

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_kind", ["postgresql"])]


class RecordingSender:
    """A gateway that takes a millisecond per message and remembers what it sent (ids, in order)."""

    def __init__(self, fail_once: set[int] | None = None) -> None:
        self.sent: list[int] = []
        self.fail_once = fail_once if fail_once is not None else set()
        self.failed: list[int] = []

    def send(self, message: OutgoingSms | OutgoingEmail) -> None:
        time.sleep(0.001)
        if message.id in self.fail_once:
            self.fail_once.discard(message.id)
            self.failed.append(message.id)
            raise ConnectionError("gateway down")
        self.sent.append(message.id)


def _queue_sms(factory: UowFactory, count: int) -> list[int]:
    with factory(write=True) as uow:
        for i in range(count):
            queue_sms(uow, f"7916{i:07d}", f"message {i}", "test")
        uow.commit()
    with factory() as uow:
        return list(uow.session.scalars(select(SmsOutbox.id).order_by(SmsOutbox.id)))


def _unsent(factory: UowFactory, box: type[SmsOutbox] | type[EmailOutbox] = SmsOutbox) -> int:
    with factory() as uow:
        return int(
            uow.session.scalar(
                select(func.count())
                .select_from(box)
                .where(box.sent_at.is_(None), box.attempts < outbox.MAX_ATTEMPTS)
            )
            or 0
        )


def _drain(factory: UowFactory, sender: RecordingSender, start: threading.Barrier, limit: int) -> None:
    """One node's delivery loop: runs until nothing is waiting any more (on any node)."""
    start.wait()
    while True:
        if deliver_pending(factory, sender, limit=limit) == 0:
            if _unsent(factory) == 0:
                return
            time.sleep(0.002)  # what is left is held by the other node's run


def _both_at_once(nodes: Nodes, senders: tuple[RecordingSender, RecordingSender], limit: int) -> None:
    start = threading.Barrier(2)
    threads = [
        threading.Thread(target=_drain, args=(factory, sender, start, limit))
        for factory, sender in zip(nodes, senders, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive()


def _rows(factory: UowFactory) -> list[SmsOutbox]:
    with factory() as uow:
        rows = list(uow.session.scalars(select(SmsOutbox).order_by(SmsOutbox.id)))
        uow.session.expunge_all()
        return rows


def test_two_pumps_send_every_message_exactly_once(nodes: Nodes) -> None:
    ids = _queue_sms(nodes[0], 300)
    senders = (RecordingSender(), RecordingSender())
    _both_at_once(nodes, senders, limit=7)
    sent = Counter(senders[0].sent + senders[1].sent)
    assert sorted(sent) == ids  # every message ...
    assert set(sent.values()) == {1}  # ... once in total
    assert senders[0].sent and senders[1].sent, "both pumps should have taken some"
    rows = _rows(nodes[1])
    assert all(r.sent_at is not None and r.attempts == 1 for r in rows)


def test_a_pump_takes_other_messages_while_another_node_holds_some(nodes: Nodes) -> None:
    """The claim skips rows another node's run holds instead of waiting for them (plain FOR UPDATE would
    wait here until that run ends, or fail on the lock timeout)."""
    ids = _queue_sms(nodes[0], 20)
    with nodes[0](write=True) as held:
        taken = [sms.id for sms in outbox.pending(held, limit=5)]
        assert taken == ids[:5]
        began = time.monotonic()
        other = RecordingSender()
        assert deliver_pending(nodes[1], other, limit=100) == 15
        assert time.monotonic() - began < 2.0
        assert other.sent == ids[5:]
        for message_id in taken:
            outbox.mark_sent(held, message_id)
        held.commit()
    assert _unsent(nodes[1]) == 0


def test_a_failed_message_stays_pending_and_is_sent_once_later(nodes: Nodes) -> None:
    ids = _queue_sms(nodes[0], 60)
    unlucky = ids[3]
    flaky = RecordingSender(fail_once={unlucky})
    assert deliver_pending(nodes[0], flaky, limit=10) == 9
    by_id = {r.id: r for r in _rows(nodes[1])}
    assert (by_id[unlucky].sent_at, by_id[unlucky].attempts) == (None, 1)  # pending, one attempt more
    assert flaky.failed == [unlucky]

    senders = (flaky, RecordingSender())
    _both_at_once(nodes, senders, limit=4)
    sent = Counter(senders[0].sent + senders[1].sent)
    assert sorted(sent) == ids and set(sent.values()) == {1}
    by_id = {r.id: r for r in _rows(nodes[1])}
    assert by_id[unlucky].sent_at is not None and by_id[unlucky].attempts == 2
    assert all(r.attempts == 1 for i, r in by_id.items() if i != unlucky)


def test_two_pumps_deliver_sms_and_email_once(nodes: Nodes) -> None:
    with nodes[0](write=True) as uow:
        for i in range(80):
            queue_sms(uow, f"7916{i:07d}", f"message {i}", "test")
            queue_email(uow, f"holder{i}@example.org", "Statement", f"body {i}", "statement")
        uow.commit()
    sms = (RecordingSender(), RecordingSender())
    mail = (RecordingSender(), RecordingSender())
    pumps = [
        SmsPump(factory, sms_sender, interval=0.005, mail_sender=mail_sender)
        for factory, sms_sender, mail_sender in zip(nodes, sms, mail, strict=True)
    ]
    for pump in pumps:
        pump.start()
    deadline = time.monotonic() + 60
    while (_unsent(nodes[0]) or _unsent(nodes[0], EmailOutbox)) and time.monotonic() < deadline:
        for pump in pumps:
            pump.kick()
        time.sleep(0.01)
    for pump in pumps:
        pump.stop()
    sent_sms = Counter(sms[0].sent + sms[1].sent)
    sent_mail = Counter(mail[0].sent + mail[1].sent)
    assert len(sent_sms) == 80 and set(sent_sms.values()) == {1}
    assert len(sent_mail) == 80 and set(sent_mail.values()) == {1}
    assert sum(p.sent for p in pumps) == 160


def test_a_node_that_dies_before_its_commit_leaves_the_message_to_be_sent_again(
    db_url: str, clock: TestClock, nodes: Nodes
) -> None:
    """At least once: the gateway took the message, the node died before committing `sent_at`; its
    connection goes, the row lock with it, and another node's pump sends the message again. This is the
    one case of a message sent twice, and it is never lost."""
    ids = _queue_sms(nodes[0], 3)
    dying = make_uow_factory(db_url, clock=clock)
    gateway = RecordingSender()
    uow = dying(write=True).__enter__()
    for sms in outbox.pending(uow, limit=10):
        gateway.send(sms)  # handed over ...
    # ... and the process is gone before its commit: its connection closes, the server rolls back.
    uow.session.invalidate()
    dying.dispose()
    survivor = RecordingSender()
    assert deliver_pending(nodes[1], survivor) == 3
    assert gateway.sent == survivor.sent == ids
    assert _unsent(nodes[1]) == 0
