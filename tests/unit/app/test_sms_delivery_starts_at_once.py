"""An action that queues an SMS starts its delivery at once: the one-time code once arrived 12-20 s after
"we sent you a code", because only actions marked as changes kicked the SMS pump and `otp.send` is not
one (it waited for the pump's 30-second round)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.app.bootstrap import LineApp, build_app
from ivr.config import PROJECT_ROOT, load_settings
from ivr.engine.commands import InvokeAction
from ivr.engine.events import CallStarted
from ivr.testbed.demo_data import init_demo

IVAN = "79161234567"


class SpyPump:
    def __init__(self) -> None:
        self.kicks = 0

    def kick(self) -> None:
        self.kicks += 1

    def stop(self) -> None:
        return None


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LineApp]:
    url = f"sqlite:///{tmp_path / 'ivr.sqlite3'}"
    init_demo(url)
    settings = load_settings(
        None,
        home=str(PROJECT_ROOT),
        database_url=url,
        var_dir=str(tmp_path / "var"),
        sounds_dir=str(tmp_path),
    )
    line_app = build_app(settings)
    line_app._database()
    assert line_app._sms_pump is not None
    line_app._sms_pump.stop()
    line_app._sms_pump = SpyPump()
    yield line_app
    line_app.close()


def _invoke(app: LineApp, name: str, args: dict[str, str], variables: dict[str, object]) -> str:
    call = CallStarted(line="operator", did="0505", caller_id=IVAN, language="ru", call_id="c-sms-1")
    invoke = app._action_invoker(call)
    result = asyncio.run(invoke(InvokeAction(name, args, idempotency_key=f"c-sms-1:{name}"), variables))
    return result.status


def test_sending_a_code_starts_the_delivery(app: LineApp) -> None:
    found = _invoke(app, "subscriber.identify", {"number": IVAN}, {})
    assert found == "found"
    pump = app._sms_pump
    assert isinstance(pump, SpyPump)
    before = pump.kicks
    subscriber = _subscriber_id(app)
    assert _invoke(app, "otp.send", {"purpose": "step_up"}, {"subscriber_id": subscriber}) == "ok"
    assert pump.kicks == before + 1


def test_a_read_only_action_does_not_wake_the_pump(app: LineApp) -> None:
    pump = app._sms_pump
    assert isinstance(pump, SpyPump)
    assert _invoke(app, "balance.report", {}, {"subscriber_id": _subscriber_id(app)}) == "ok"
    assert pump.kicks == 0


def _subscriber_id(app: LineApp) -> int:
    from sqlalchemy import select

    from ivr.db.models import Subscriber

    with app._database()(write=False) as uow:
        return int(uow.session.scalars(select(Subscriber.id).where(Subscriber.msisdn == IVAN)).one())


def test_every_action_reports_how_long_it_waited_for_a_worker(app: LineApp) -> None:
    """`ivr serve`'s overload protection hears of each action's wait for a free worker thread."""
    waits: list[float] = []
    app.on_action_wait = waits.append
    assert _invoke(app, "subscriber.identify", {}, {"caller_id": IVAN, "caller_id_trusted": True}) == "found"
    assert _invoke(app, "balance.report", {}, {"subscriber_id": 1}) == "ok"
    assert len(waits) == 2 and all(0.0 <= w < 5.0 for w in waits)
