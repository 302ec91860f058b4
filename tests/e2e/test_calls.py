"""Real calls: sipp -> Asterisk (project-local, loopback) -> FastAGI `ivr serve` -> engine, trees, actions on
a seeded SQLite database, rendered prompt audio. Assertions come from AMI (VarSet, UserEvent, Hangup), the
database and the server log, never from timing."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import re
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from ivr.db.models import PasswordReset, SmsOutbox, Subscriber
from ivr.telephony.ami import CallRecord, CallWatcher
from ivr.testbed.dialer import DialResult, dial, run_sipp
from ivr.testbed.localline import LocalLine as LineStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NORMAL_CLEARING = 16
# The operator line's action_timeout (LineSettings default): how long an action may keep a caller waiting.
ACTION_LIMIT = 6.0
IVAN = "79161234567"  # docs/demo-subscribers.md: positive balance, PIN 1234
MARIA = "79161110001"  # negative balance, no web account
ELENA_ROAMING = "79161110003"  # in roaming, calls the long-form number
ANNA_LOYALTY = "79031234567"  # loyalty programme member (3 cards)
ANNA_CARD = "2770000000017"  # one of her cards (EAN-13)
TATIANA_LOYALTY = "79031110001"  # five cards, PIN 1111


def subscriber_id(stack: LineStack, msisdn: str) -> str:
    engine = create_engine(stack.settings.db_url)
    try:
        with DbSession(engine) as db:
            sub = db.scalars(select(Subscriber).where(Subscriber.msisdn == msisdn)).one()
            return str(sub.id)
    finally:
        engine.dispose()


def call(
    stack: LineStack,
    number: str,
    caller: str,
    keys: str,
    *,
    wait: float = 3.0,
    first_wait: float = 2.0,
    gap_ms: int = 400,
) -> DialResult:
    result = asyncio.run(
        dial(
            stack.settings, number, caller=caller, keys=keys, wait=wait, first_wait=first_wait, gap_ms=gap_ms
        )
    )
    print(result.describe())
    return result


def actions_of(result: DialResult) -> list[str]:
    assert result.record is not None, "AMI never saw the call"
    return [value for name, value in result.record.variable_history if name == "IVR_LAST_ACTION"]


def assert_ended_normally(result: DialResult) -> None:
    assert result.sipp_exit == 0, result.sipp_errors
    assert result.hangup_cause == NORMAL_CLEARING, result.describe()
    failures = [e for e in result.user_events if e.get("UserEvent") == "IVRFailure"]
    assert not failures, f"the call fell to [ivr-failure]: {failures}"


def test_home_subscriber_hears_balance_on_0505(line_stack: LineStack) -> None:
    began = time.monotonic()
    result = call(line_stack, "0505", IVAN, "1")
    seconds = time.monotonic() - began
    assert_ended_normally(result)
    assert "subscriber.identify:found" in actions_of(result)
    assert "balance.report:ok" in actions_of(result)
    assert result.variables.get("IVR_SUBSCRIBER") == subscriber_id(line_stack, IVAN)
    log = line_stack.log_for(result.record.uniqueid if result.record else "")
    assert any("action balance.report status=ok" in line for line in log), log
    assert any("trust=yes roaming=no" in line for line in log), log
    print(f"e2e call wall time: {seconds:.1f} s")


def test_a_real_call_gets_through_1000_idle_connections(line_stack: LineStack) -> None:
    """1,000 sockets open on the FastAGI port that never send a header (a scan, a stuck balancer) once
    refused real calls as "1000 calls in progress". They are not calls: a real call still gets through."""
    idle = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", line_stack.settings.agi_port), timeout=5)
            idle.append(sock)
        result = call(line_stack, "0505", IVAN, "1")
    finally:
        for sock in idle:
            sock.close()
    assert_ended_normally(result)
    assert "balance.report:ok" in actions_of(result)


def test_roaming_subscriber_on_long_number(line_stack: LineStack) -> None:
    result = call(line_stack, "+79221110505", ELENA_ROAMING, "1")
    assert_ended_normally(result)
    assert result.variables.get("IVR_ROAMING") == "yes"
    assert "balance.report:ok" in actions_of(result)
    assert result.variables.get("IVR_SUBSCRIBER") == subscriber_id(line_stack, ELENA_ROAMING)
    assert result.record is not None
    log = line_stack.log_for(result.record.uniqueid)
    # The engine got the roaming fact: the server logged it, and the tree skipped the short-number tip.
    assert any("did=79221110505" in line and "roaming=yes" in line for line in log), log
    assert not any("short_number_tip" in line for line in log), log


@pytest.mark.parametrize("dialled", ["89221110505", "79221110505"])
def test_other_long_forms_reach_the_operator_line(line_stack: LineStack, dialled: str) -> None:
    result = call(line_stack, dialled, ELENA_ROAMING, "1")
    assert_ended_normally(result)
    assert result.variables.get("IVR_DID") == "79221110505"
    assert "balance.report:ok" in actions_of(result)


ROUTES = {  # dialled -> (line, did, trust, roaming)
    "0505": ("operator", "0505", "yes", "no"),
    "0500": ("operator", "0500", "yes", "no"),
    "+79221110505": ("operator", "79221110505", "yes", "yes"),
    "+79261110500": ("operator", "79261110500", "yes", "yes"),
    "79261110500": ("operator", "79261110500", "yes", "yes"),
    "89261110500": ("operator", "79261110500", "yes", "yes"),
    "88005500500": ("operator", "88005500500", "no", "no"),
    "+78005500500": ("operator", "88005500500", "no", "no"),
    "78005500500": ("operator", "88005500500", "no", "no"),
    "88005553609": ("loyalty", "88005553609", "no", "no"),
    "+78005553609": ("loyalty", "88005553609", "no", "no"),
    "78005553609": ("loyalty", "88005553609", "no", "no"),
}


def test_every_service_number_routes_with_its_flags(line_stack: LineStack) -> None:
    async def all_calls() -> list[DialResult]:
        watcher = CallWatcher(line_stack.settings)
        await watcher.connect()
        try:
            return list(
                await asyncio.gather(
                    *(
                        dial(line_stack.settings, n, caller=IVAN, first_wait=1.0, wait=1.0, watcher=watcher)
                        for n in ROUTES
                    )
                )
            )
        finally:
            await watcher.close()

    for dialled, result in zip(ROUTES, asyncio.run(all_calls()), strict=True):
        assert result.sipp_exit == 0, result.describe()
        seen = tuple(result.variables.get(v) for v in ("IVR_LINE", "IVR_DID", "IVR_TRUST", "IVR_ROAMING"))
        assert seen == ROUTES[dialled], dialled
        assert result.record is not None
        log = line_stack.log_for(result.record.uniqueid)
        line, did, trust, roaming = ROUTES[dialled]
        # The server got the same facts in the AGI request (and handed them to the engine).
        assert any(f"agi request line={line} did={did} trust={trust} roaming={roaming}" in x for x in log), (
            log
        )


def test_loyalty_member_hears_points(line_stack: LineStack) -> None:
    # The loyalty line: 2 = identify by phone number, the number and #, the member's PIN and #, then
    # 1 = points balance. A phone number alone opens nothing: it once told anyone a member's points.
    keys = "2," + ANNA_LOYALTY + "#,1234#,1"
    result = call(line_stack, "88005553609", ANNA_LOYALTY, keys, wait=4.0, first_wait=3.0)
    assert_ended_normally(result)
    assert result.variables.get("IVR_LINE") == "loyalty"
    done = actions_of(result)
    assert "card.identify:found" in done, done
    assert "subscriber.verify_pin:ok" in done, done
    assert "loyalty.balance:ok" in done, done


def test_a_loyalty_phone_number_without_the_pin_hears_no_points(line_stack: LineStack) -> None:
    result = call(line_stack, "88005553609", ANNA_LOYALTY, "2," + ANNA_LOYALTY + "#,9999#,1", wait=4.0)
    done = actions_of(result)
    assert "subscriber.verify_pin:wrong" in done, done
    assert not any(action.startswith("loyalty.balance") for action in done), done
    assert result.variables.get("IVR_SUBSCRIBER") == subscriber_id(line_stack, ANNA_LOYALTY)


def test_landline_caller_keys_number_and_pin(line_stack: LineStack) -> None:
    # 8-800 from a landline: caller ID not trusted, so number (11 digits) then PIN 1234 and #, then 1.
    result = call(line_stack, "88005500500", "74951234567", IVAN + ",1234#,1", wait=4.0, first_wait=3.0)
    assert_ended_normally(result)
    assert result.variables.get("IVR_TRUST") == "no"
    done = actions_of(result)
    assert "subscriber.verify_pin:ok" in done, done
    assert "balance.report:ok" in done, done
    assert result.variables.get("IVR_SUBSCRIBER") == subscriber_id(line_stack, IVAN)
    assert result.record is not None
    log = "\n".join(line_stack.log_for(result.record.uniqueid))
    assert "4 digits (secret)" in log, log
    assert "'1234'" not in log and "pin=1234" not in log, "the PIN leaked into the log"


def test_a_subscriber_without_a_web_account_registers_one(line_stack: LineStack) -> None:
    # Main menu 4 = web password; confirm (1); no web account yet: create one? (1).
    result = call(line_stack, "0505", MARIA, "4,1,1", wait=5.0)
    assert_ended_normally(result)
    done = actions_of(result)
    assert "password.reset:no_web_account" in done and "web.register:ok" in done, done
    outbox = line_stack.settings.var / "sms" / "outbox.log"
    sent = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    assert any(m["to"] == MARIA and m["kind"] == "web_registration" for m in sent), sent


def test_a_subscriber_buys_a_package(line_stack: LineStack) -> None:
    # Main menu 2 = tariff, then 2 = packages; the first package (100 minutes), confirm (1).
    result = call(line_stack, "0505", IVAN, "2,2,1,1", wait=5.0, first_wait=2.0)
    assert_ended_normally(result)
    done = actions_of(result)
    assert "package.list:ok" in done and "package.buy:ok" in done, done


def test_a_subscriber_orders_a_detailed_statement(line_stack: LineStack) -> None:
    # Main menu 2 = tariff, 3 = statement, 2 = the last thirty days: by e-mail (Ivan has one on file).
    result = call(line_stack, "0505", IVAN, "2,3,2", wait=5.0)
    assert_ended_normally(result)
    assert "statement.order:ok" in actions_of(result)
    mail = line_stack.settings.var / "mail" / "outbox.log"
    sent = [json.loads(line) for line in mail.read_text(encoding="utf-8").splitlines()]
    assert any(m["to"] == "ivan.petrov@example.com" and m["kind"] == "statement" for m in sent), sent


def test_loyalty_delete_and_transfer_menus_reach_their_step_up(line_stack: LineStack) -> None:
    """The new loyalty menus answer through Asterisk: deleting a card (card menu 4) and transferring points
    (main menu 6) each start with a one-time code. (A real call cannot type the SMS code: sipp's keys are
    fixed before the call; the scenarios run the flows to their end.)"""
    # Tatiana: her own code budget (three codes an hour per member), apart from Anna's in other tests.
    member = "2," + TATIANA_LOYALTY + "#,1111#,"
    delete = call(line_stack, "88005553609", TATIANA_LOYALTY, member + "3,2,4", wait=4.0)
    assert "card.list:ok" in actions_of(delete) and "otp.send:ok" in actions_of(delete), actions_of(delete)
    transfer = call(line_stack, "88005553609", TATIANA_LOYALTY, member + "6", wait=4.0)
    assert "otp.send:ok" in actions_of(transfer), actions_of(transfer)


def test_a_loyalty_member_subscribes_to_the_sms_mailing(line_stack: LineStack) -> None:
    # Mikhail (PIN 2222): phone and PIN, main menu 7 = mailings, 1 = subscribe by SMS, confirm (1).
    keys = "2,79031110002#,2222#,7,1,1"
    result = call(line_stack, "88005553609", "79031110002", keys, wait=4.0, first_wait=3.0)
    done = actions_of(result)
    assert "mailing.status:ok" in done and "mailing.set:ok" in done, done


def test_leaving_the_loyalty_programme_warns_then_asks_for_a_code(line_stack: LineStack) -> None:
    # Mikhail: phone and PIN, main menu 8 = leave; he hears what is lost, confirms once, and the one-time
    # code is sent (a real call cannot type it; the scenario runs the flow to its end).
    keys = "2,79031110002#,2222#,8,1"
    result = call(line_stack, "88005553609", "79031110002", keys, wait=4.0, first_wait=3.0)
    done = actions_of(result)
    assert "programme.leave_info:ok" in done and "otp.send:ok" in done, done
    assert not any(action.startswith("programme.leave:") for action in done), done


def test_a_caller_who_is_not_a_member_is_offered_to_join(line_stack: LineStack) -> None:
    # An unknown phone number: the offer to join (1), a pending holder, and the one-time code is sent to
    # the number named (a real call cannot type it; the scenario runs the flow to its end).
    result = call(line_stack, "88005553609", "79051112233", "2,79051112233#,1", wait=4.0, first_wait=3.0)
    done = actions_of(result)
    assert "card.identify:unknown" in done and "programme.join_start:ok" in done, done
    assert "otp.send:ok" in done, done


def test_the_hash_after_the_number_stays_with_the_number(line_stack: LineStack) -> None:
    """The 8-800 prompt says "enter the 11-digit number and press #": that # must not answer the PIN
    question (it once did, with an empty input, and the caller heard "no input")."""
    result = call(line_stack, "88005500500", "74951234567", IVAN + "#,1234#,1", wait=4.0, first_wait=3.0)
    assert_ended_normally(result)
    done = actions_of(result)
    assert "subscriber.verify_pin:ok" in done, done
    assert "balance.report:ok" in done, done
    assert result.record is not None
    inputs = [
        line.split(" input ", 1)[1]
        for line in line_stack.log_for(result.record.uniqueid)
        if " input " in line
    ]
    assert inputs[:2] == [f"digits '{IVAN}'", "4 digits (secret)"], inputs


def test_password_reset_is_confirmed_applied_and_texted(line_stack: LineStack) -> None:
    # Main menu 4 = web password; the confirm step asks "yes: 1, no: 2".
    result = call(line_stack, "0505", IVAN, "4,1", wait=4.0)
    assert_ended_normally(result)
    assert "password.reset:ok" in actions_of(result)
    engine = create_engine(line_stack.settings.db_url)
    try:
        with DbSession(engine) as db:
            sub_id = int(subscriber_id(line_stack, IVAN))
            assert db.scalars(select(PasswordReset).where(PasswordReset.subscriber_id == sub_id)).all()
            queued = db.scalars(select(SmsOutbox).where(SmsOutbox.msisdn == IVAN)).all()
            assert queued, "the new password was not queued as an SMS"
        # The server's SMS pump delivers it (file sender: var/sms/outbox.log); wait for it, bounded.
        outbox = line_stack.var / "sms" / "outbox.log"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (outbox.exists() and IVAN in outbox.read_text()):
            time.sleep(0.2)
        assert outbox.exists() and f'"to": "{IVAN}"' in outbox.read_text()
    finally:
        engine.dispose()
    assert result.record is not None
    log = "\n".join(line_stack.log_for(result.record.uniqueid))
    assert "action password.reset status=ok" in log


def test_caller_switches_to_english(line_stack: LineStack) -> None:
    # Main menu 8 = English; the menu comes again in English, where 1 is still the balance.
    result = call(line_stack, "0505", IVAN, "8,,1", wait=4.0)
    assert_ended_normally(result)
    assert "balance.report:ok" in actions_of(result)
    assert result.record is not None and result.record.language == "en"  # CHANNEL(language) was set
    log = "\n".join(line_stack.log_for(result.record.uniqueid))
    assert "lang=ru" in log and "lang=en" in log, log  # prompts before and after the switch


def test_stdio_agi_route_runs_the_same_call(line_stack: LineStack) -> None:
    # *9 before a service number runs the call through the per-call stdio AGI (pyst2) instead of FastAGI.
    # The process takes 1.5-2 s of CPU to start, and a key pressed before it reads is lost: the key comes
    # 5 s in, inside the main menu's prompt (it once came too early on a loaded machine).
    result = call(line_stack, "*90505", IVAN, "1", first_wait=5.0)
    assert_ended_normally(result)
    assert "balance.report:ok" in actions_of(result)
    assert result.variables.get("IVR_SUBSCRIBER") == subscriber_id(line_stack, IVAN)


def test_operator_key_transfers_to_the_operator_queue(line_stack: LineStack) -> None:
    # No operator is logged in on this line: the caller is offered a callback, says nothing, and joins the
    # queue, which says at once that nobody can answer now.
    result = call(line_stack, "0505", IVAN, "0", wait=24.0)
    assert result.sipp_exit == 0, result.sipp_errors
    assert result.variables.get("IVR_RESULT") == "transfer", result.describe()
    operator = [e for e in result.user_events if e.get("UserEvent") == "IVROperator"]
    assert operator and operator[0].get("Queue") == "operators", result.describe()
    queued = [e for e in result.user_events if e.get("UserEvent") == "IVRQueueResult"]
    assert queued and queued[0].get("Status") == "JOINEMPTY", result.describe()
    assert result.record is not None
    said = [what for _at, what in call_timeline(line_stack.log_for(result.record.uniqueid))]
    assert any(what.startswith("play callback_offer_no_agents") for what in said), said


def test_server_down_sends_caller_to_failure_path(line_stack: LineStack) -> None:
    line_stack.stop_server()
    try:
        result = call(line_stack, "0505", IVAN, "", wait=15.0)
    finally:
        line_stack.start_server()
    assert result.sipp_exit == 0, result.sipp_errors
    names = [e.get("UserEvent") for e in result.user_events]
    assert names == ["IVRFailure", "IVROperator", "IVRQueueResult"], result.describe()
    assert result.user_events[0].get("AgiStatus") == "FAILURE"
    assert result.user_events[1].get("Reason") == "failure"
    assert result.user_events[2].get("Status") == "JOINEMPTY"  # no operator logged in on this line
    assert result.hangup_cause == NORMAL_CLEARING  # "no operator can answer now", then a hang-up


def test_server_still_serves_after_the_outage(line_stack: LineStack) -> None:
    result = call(line_stack, "0500", IVAN, "1")
    assert_ended_normally(result)
    assert "balance.report:ok" in actions_of(result)


def test_number_that_is_not_a_service_number(line_stack: LineStack) -> None:
    result = call(line_stack, "12345", IVAN, "", wait=8.0)
    assert result.sipp_exit == 0, result.sipp_errors
    assert result.record is not None
    assert "IVR_LINE" not in result.variables  # never reached a line
    assert result.hangup_cause == 1  # unallocated number, after the "no service" announcement


def test_softphone_with_its_password_is_identified(line_stack: LineStack, tmp_path: Path) -> None:
    """The local softphone endpoint (digest auth, password from var/secrets.toml) calls 0505 as a demo
    subscriber; a wrong password is refused."""
    from ivr.testbed.asterisk import read_secrets

    password = read_secrets(line_stack.settings)["softphone_password"]
    xml = (Path(__file__).parent / "softphone_call.xml").read_text()

    async def place(secret: str, timeout: float) -> tuple[int, CallRecord | None]:
        watcher = CallWatcher(line_stack.settings, record_all=True)
        await watcher.connect()
        try:
            code, _errors = await run_sipp(
                xml,
                line_stack.settings,
                timeout=timeout,
                workdir=tmp_path,
                extra_args=("-au", "softphone", "-ap", secret),
            )
            records = [r for r in watcher.calls.values() if r.exten == "0505"]
            if records:
                await asyncio.wait_for(records[0].ended.wait(), 10)
            return code, records[0] if records else None
        finally:
            await watcher.close()

    code, _ = asyncio.run(place("not-the-password", timeout=8))
    assert code != 0
    code, record = asyncio.run(place(password, timeout=30))
    assert code == 0
    assert record is not None and record.caller_num == "79161234567"
    log = "\n".join(line_stack.log_for(record.uniqueid))
    assert "action subscriber.identify status=found" in log, log


def call_timeline(lines: list[str]) -> list[tuple[float, str]]:
    """(seconds, what) for each prompt played and input taken, from the server log of one call."""
    out = []
    for line in lines:
        stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", line)
        what = re.search(r"ivr\.\w+(?:\.\w+)*: ((?:play|input|action|transfer) .*)$", line)
        if stamp and what:
            at = (
                dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
                + int(stamp.group(2)) / 1000
            )
            out.append((at, what.group(1)))
    return out


def assert_never_silent(timeline: list[tuple[float, str]], limit: float) -> None:
    """Between one prompt or input and the next, never more than `limit` seconds (the issue's measure:
    the action limit plus 2 s), measured on the call's own timeline."""
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(timeline)]
    assert gaps and max(gaps) <= limit, [
        (what, round(gap, 2)) for (_, what), gap in zip(timeline[1:], gaps, strict=True)
    ]


def test_a_locked_database_gives_hold_then_apology_never_silence(line_stack: LineStack) -> None:
    """The database's write lock is held elsewhere while a caller confirms a change: the caller hears the
    hold prompt, then the apology and the operator, never more than the action limit plus 2 s of silence
    (a held SQLite lock once gave 60 s of dead air)."""
    database = line_stack.settings.db_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(database, timeout=1, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(25, holder.rollback)
    releaser.start()
    try:
        result = call(line_stack, "0505", IVAN, "4,1", wait=12.0)  # web password, confirm: a write
    finally:
        releaser.cancel()
        holder.rollback()
        holder.close()
    assert result.sipp_exit == 0, result.sipp_errors
    assert "password.reset:error" in actions_of(result)
    assert result.variables.get("IVR_RESULT") == "transfer"
    assert result.record is not None
    timeline = call_timeline(line_stack.log_for(result.record.uniqueid))
    events = [what for _at, what in timeline]
    confirm = max(i for i, what in enumerate(events) if what.startswith("input "))
    after = events[confirm:]
    assert any(what.startswith("play please_wait") for what in after), after
    assert any(what.startswith("play error_apology") for what in after), after
    assert_never_silent(timeline[confirm:], ACTION_LIMIT + 2.0)


def test_the_one_time_code_is_sent_before_the_caller_is_asked_for_it(line_stack: LineStack) -> None:
    """ "We sent you a code" must be true when it is said: the SMS once left 12-20 s later, with the pump's
    next round, while the question waited 5 s for the code."""
    result = call(line_stack, "88005553609", ANNA_LOYALTY, "1," + ANNA_CARD + "#,4", wait=5.0, first_wait=3.0)
    assert "otp.send:ok" in actions_of(result)
    assert result.record is not None
    asked = [
        at for at, what in call_timeline(line_stack.log_for(result.record.uniqueid)) if "otp_sent" in what
    ]
    assert asked, "the code question was never asked"
    outbox = line_stack.settings.var / "sms" / "outbox.log"
    sent = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    codes = [m for m in sent if m["to"] == ANNA_LOYALTY and m["kind"] == "otp"]
    assert codes, sent
    delivered = dt.datetime.fromisoformat(codes[-1]["at"]).timestamp()  # whole seconds (the sender's stamp)
    assert delivered <= asked[0] + 1.0, (delivered, asked[0])
