"""A record per call: what is kept of the caller and their inputs (never a secret), and how a call's
ending is classified."""

from __future__ import annotations

import time

from ivr.app.records import CallRecords, CallTrace, call_record, caller_key, classify
from ivr.db.models import IvrCall
from ivr.engine.commands import Collect, PromptRef
from ivr.engine.events import CallStarted, Digits, NoInput, Speech


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


MENU = Collect(prompts=(PromptRef("main_menu"),), max_digits=1)
NUMBER = Collect(prompts=(PromptRef("ask_number"),), max_digits=11)
PIN = Collect(prompts=(PromptRef("ask_pin"),), max_digits=4, secret=True)


def test_inputs_keep_menu_keys_but_never_numbers_or_secrets() -> None:
    trace = CallTrace(clock=Clock())
    trace.input("main", MENU, Digits("1"))
    trace.input("ask_number", NUMBER, Digits("79161234567"))
    trace.input("ask_pin", PIN, Digits("1234"))
    trace.input("ask_pin", PIN, Speech("один два три четыре", 0.9))
    trace.input("main", MENU, NoInput())
    values = [(i["kind"], i["value"]) for i in trace.inputs]
    assert values == [
        ("digits", "1"),
        ("digits", "11 digits"),
        ("digits", "secret"),
        ("speech", "secret"),
        ("no_input", ""),
    ]
    assert "79161234567" not in repr(trace.inputs) and "1234" not in repr(trace.inputs)


def test_speech_is_kept_with_how_it_was_heard_but_never_at_a_secret_or_as_a_number() -> None:
    spoken_number = Collect(prompts=(PromptRef("ask_card"),), max_digits=16, spoken_digits=True)
    trace = CallTrace(clock=Clock())
    trace.input("main", MENU, Speech("баланс", 0.87, audio_seconds=1.25, latency=0.031))
    trace.input("ask_card", spoken_number, Speech("один два три четыре", 0.9, audio_seconds=3.0))
    trace.input("ask_pin", PIN, Speech("один два три четыре", 0.9, audio_seconds=2.0, latency=0.02))
    menu, number, pin = trace.inputs
    assert (menu["kind"], menu["value"], menu["confidence"]) == ("speech", "баланс", 0.87)
    assert (menu["audio_ms"], menu["latency_ms"]) == (1250, 31)
    assert number["value"] == "4 spoken digits" and "один" not in repr(number)
    assert pin["value"] == "secret"
    assert not {"confidence", "audio_ms", "latency_ms"} & set(pin)  # nothing about a secret answer


def test_nodes_are_kept_once_per_entry_with_their_time() -> None:
    clock = Clock()
    trace = CallTrace(clock=clock)
    trace.enter("welcome")
    clock.now += 1.5
    trace.enter("main")
    trace.enter("main")  # still there: not a new visit
    clock.now += 2.0
    trace.enter("balance")
    assert trace.nodes == [
        {"node": "welcome", "at_ms": 0},
        {"node": "main", "at_ms": 1500},
        {"node": "balance", "at_ms": 3500},
    ]
    assert trace.last_node == "balance"


def test_a_refused_input_becomes_a_no_match() -> None:
    trace = CallTrace(clock=Clock())
    trace.input("main", MENU, Digits("7"))
    trace.no_match()
    assert trace.inputs[-1]["kind"] == "no_match" and trace.inputs[-1]["value"] == "7"


def test_how_a_call_ended() -> None:
    identified = [{"name": "subscriber.identify", "status": "found", "ms": 3}]
    served = [*identified, {"name": "balance.report", "status": "ok", "ms": 5}]
    failed_service = [*identified, {"name": "balance.report", "status": "error", "ms": 5}]
    assert classify("transfer", served) == "transferred"
    assert classify("error", served) == "failed"
    assert classify("cancelled", []) == "failed"
    assert classify("hangup", identified) == "self_served"  # the tree said goodbye
    assert classify("caller_hangup", served) == "self_served"
    assert classify("caller_hangup", identified) == "abandoned"  # identified, then hung up in the menu
    assert classify("caller_hangup", failed_service) == "abandoned"
    assert classify("caller_hangup", []) == "abandoned"


def test_the_caller_is_kept_masked_and_as_a_keyed_hash() -> None:
    call = CallStarted(line="operator", did="0505", caller_id="79161234567", call_id="c-1")
    trace = CallTrace(clock=Clock())
    trace.action("balance.report", "ok", 0.004)
    trace.state({"authenticated": True, "auth_method": "caller_id"}, "2026.12.1")
    record = call_record(
        call, trace, result="caller_hangup", reason="", queue="", subscriber_id="1", seconds=9.5, key="k1"
    )
    assert record.caller_masked == "7916*****67"
    assert record.caller_key == caller_key("79161234567", "k1") and record.caller_key
    assert "79161234567" not in repr(record.__dict__)
    assert (record.outcome, record.trust, record.tree_version, record.subscriber_id) == (
        "self_served",
        "caller_id",
        "2026.12.1",
        1,
    )
    assert caller_key("79161234567", "k2") != record.caller_key  # another installation, another hash
    assert caller_key("", "k1") is None and caller_key("79161234567", "") is None


class FakeUow:
    def __init__(self, batches: list[int], fail: bool) -> None:
        self.batches, self.fail = batches, fail
        self.session = self
        self._pending: list[object] = []

    def __enter__(self) -> FakeUow:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_all(self, records: list[object]) -> None:
        if self.fail:
            raise RuntimeError("database away")
        self._pending = list(records)

    def commit(self) -> None:
        if not self.batches:
            time.sleep(0.2)  # a slow first commit: the calls ending meanwhile queue up behind it
        self.batches.append(len(self._pending))


def _records(n: int) -> list[IvrCall]:
    call = CallStarted(line="operator", did="0505", caller_id="79161234567", call_id="c")
    return [
        call_record(call, CallTrace(clock=Clock()), result="hangup", reason="", queue="", subscriber_id="",
                    seconds=1.0, key="k")
        for _ in range(n)
    ]  # fmt: skip


def test_records_are_written_in_batches_by_their_own_thread_and_flushed_on_close() -> None:
    batches: list[int] = []
    writer = CallRecords(lambda write=False: FakeUow(batches, fail=False), key="k")
    for record in _records(450):
        writer.submit(record)
    writer.close()
    assert sum(batches) == 450 and writer.written == 450
    assert all(size <= CallRecords.BATCH for size in batches)
    assert len(batches) <= 4  # batched (the first alone, then up to 200 at a time), not one per call


def test_a_database_failure_loses_the_batch_but_never_raises() -> None:
    batches: list[int] = []
    writer = CallRecords(lambda write=False: FakeUow(batches, fail=True), key="k")
    for record in _records(3):
        writer.submit(record)
    writer.close()
    assert batches == [] and writer.lost == 3 and writer.written == 0
