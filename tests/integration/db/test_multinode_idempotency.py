"""Several server nodes, one PostgreSQL: one idempotency key applied at the same instant on two nodes
changes the account once. Each "node" is its own engine (its own pool); the attempts run in threads
released together by a barrier.

How (ivr.services.common.once, ivr.app.actions.invoke): the record of the key is written in the change's
own transaction; a second first attempt fails on the key's primary key and its whole transaction rolls
back; `invoke` runs it again, which now finds the stored result."""

from __future__ import annotations

from collections import Counter

import pytest
from dbfixtures import ANNA, NATALIA, demo_ids
from multinode import Nodes, all_at_once
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ivr.app.actions import ActionContext, invoke
from ivr.db.models import Account, IdempotencyRecord, PointsEntry, Subscriber
from ivr.db.session import UowFactory
from ivr.services import bonus

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_kind", ["postgresql"])]


def _points(factory: UowFactory, account_id: int) -> tuple[int, int]:
    """(the account's points, the sum of its ledger)."""
    with factory() as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        ledger = uow.session.scalar(
            select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(PointsEntry.account_id == account_id)
        )
        return account.points, int(ledger or 0)


def test_one_key_invoked_on_two_nodes_at_once_redeems_once(nodes: Nodes) -> None:
    sub_id, account_id = demo_ids(nodes[0], NATALIA)
    key = "node-a-1712.44:redeem:1"
    contexts = [
        ActionContext("node-a-1712.44", "operator", "ru", {"subscriber_id": sub_id}, factory, key)
        for factory in nodes
    ]
    results = all_at_once(16, lambda i: invoke("bonus.redeem", {"reward_key": "1"}, contexts[i % 2]))
    assert len({repr(r) for r in results}) == 1, {repr(r) for r in results}  # everyone hears the same
    assert results[0].status == "ok"
    assert _points(nodes[1], account_id) == (24500, 24500)  # 500 points taken once
    with nodes[1]() as uow:
        sub = uow.session.get(Subscriber, sub_id)
        assert sub is not None and sub.minutes_left == 300 + 100  # one package of minutes, not sixteen
        assert uow.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1


def test_one_key_in_the_service_on_two_nodes_is_applied_once_or_refused(nodes: Nodes) -> None:
    """Below `invoke`: the loser of the race either replays the stored result or is refused by the key's
    primary key (its transaction rolled back whole); never a second change."""
    sub_id, account_id = demo_ids(nodes[0], ANNA)
    before = _points(nodes[0], account_id)[0]

    def redeem(i: int) -> str:
        try:
            with nodes[i % 2](write=True) as uow:
                result = bonus.redeem(uow, sub_id, reward_code="coffee", key="node-b-99.1:redeem:coffee")
                uow.commit()
            return result.status
        except IntegrityError:
            return "refused"

    outcomes = Counter(all_at_once(6, redeem))
    assert set(outcomes) <= {"ok", "refused"} and outcomes["ok"] >= 1
    assert _points(nodes[1], account_id)[0] == before - 300
    with nodes[1](write=True) as uow:  # a retry afterwards, on either node, replays the first result
        again = bonus.redeem(uow, sub_id, reward_code="coffee", key="node-b-99.1:redeem:coffee")
        uow.commit()
    assert again.status == "ok"
    assert _points(nodes[0], account_id)[0] == before - 300
