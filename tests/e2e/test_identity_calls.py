"""Who is calling, through real calls (sipp -> project-local Asterisk -> `ivr serve`): each trust path,
lockout across separate calls, and a sweep of every log, the CDR, the channel variables and every text
column of the database for the PIN and the one-time code the calls used.

Assertions come from AMI (IVR_LAST_ACTION history), the database and files, never from timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import String, Text, create_engine, select
from sqlalchemy.orm import Session as DbSession

from ivr.db.models import Base, SmsOutbox, Subscriber
from ivr.db.session import make_uow_factory
from ivr.services import auth
from ivr.testbed.dialer import DialResult, dial
from ivr.testbed.localline import LocalLine

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NATALIA = "79161110005"  # demo PIN 8888; these tests give her a PIN that appears nowhere else
OLEG = "79161110002"  # demo PIN 2222
CORP_OWN = "79262220003"  # demo PIN 7777: used for the lockout
SECRET_PIN = "593817"


def place(stack: LocalLine, number: str, caller: str, keys: str, wait: float = 4.0) -> DialResult:
    result = asyncio.run(dial(stack.settings, number, caller=caller, keys=keys, wait=wait, first_wait=3.0))
    print(result.describe())
    return result


def actions_of(result: DialResult) -> list[str]:
    assert result.record is not None, "AMI never saw the call"
    return [value for name, value in result.record.variable_history if name == "IVR_LAST_ACTION"]


def set_pin(stack: LocalLine, msisdn: str, pin: str) -> None:
    factory = make_uow_factory(stack.settings.db_url)
    try:
        with factory(write=True) as uow:
            sub = uow.session.scalars(select(Subscriber).where(Subscriber.msisdn == msisdn)).one()
            auth.set_pin(uow, sub.id, pin)
            uow.commit()
    finally:
        factory.dispose()


@pytest.fixture
def secret_pin(line_stack: LocalLine) -> Iterator[str]:
    set_pin(line_stack, NATALIA, SECRET_PIN)
    try:
        yield SECRET_PIN
    finally:
        set_pin(line_stack, NATALIA, "8888")


def db_texts(url: str) -> list[tuple[str, str, str]]:
    """(table, column, value) for every text column of every table."""
    engine = create_engine(url)
    found: list[tuple[str, str, str]] = []
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                columns = [c for c in table.columns if isinstance(c.type, String | Text)]
                if not columns:
                    continue
                for row in conn.execute(select(*columns)):
                    found.extend((table.name, c.name, str(v)) for c, v in zip(columns, row, strict=True) if v)
    finally:
        engine.dispose()
    return found


def files_containing(root: Path, secret: str, *, skip: tuple[Path, ...] = ()) -> list[str]:
    """Every file under root (logs, CDR, Asterisk's own files, the server's stderr) whose bytes contain
    the secret. Audio and the SQLite file itself are skipped (the database is checked column by column)."""
    hits = []
    for path in root.rglob("*"):
        if not path.is_file() or path in skip or path.suffix in (".wav", ".pcap", ".gsm"):
            continue
        if path.name.startswith("ivr.sqlite3"):  # the database file and its -wal/-shm: see db_texts
            continue
        if secret.encode() in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


def test_landline_pin_and_one_time_code_leave_no_trace(line_stack: LocalLine, secret_pin: str) -> None:
    # 8-800 from a landline: number, PIN, then 4 (password) -> step-up: a one-time code goes out by SMS.
    # The caller hangs up at the code question (sipp cannot read an SMS); the code is still a secret.
    result = place(line_stack, "88005500500", "74957770001", f"{NATALIA},{secret_pin}#,,4", wait=6.0)
    assert result.sipp_exit == 0, result.sipp_errors
    done = actions_of(result)
    assert "subscriber.verify_pin:ok" in done, done
    assert "otp.send:ok" in done, done
    assert result.variables.get("IVR_TRUST") == "no"

    with DbSession(create_engine(line_stack.settings.db_url)) as db:
        sms = db.scalars(select(SmsOutbox).where(SmsOutbox.msisdn == NATALIA, SmsOutbox.kind == "otp")).all()
    assert sms, "no one-time code was queued"
    code = next(w.rstrip(".") for w in sms[-1].text.split() if w.rstrip(".").isdigit())
    assert len(code) == 6

    # Let the SMS pump deliver (the outbox log is the delivery channel, the one place a code may be).
    outbox = line_stack.var / "sms" / "outbox.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (outbox.exists() and code in outbox.read_text()):
        time.sleep(0.2)
    assert outbox.exists() and code in outbox.read_text()

    # Where the sweep looks must exist, or it proves nothing.
    asterisk_log = line_stack.var / "asterisk" / "log"
    assert (asterisk_log / "messages.log").is_file()
    assert list(asterisk_log.rglob("Master.csv")), "no CDR written"
    assert line_stack.server_log.is_file()
    assert any(line_stack.log_for(result.record.uniqueid if result.record else ""))

    assert files_containing(line_stack.var, secret_pin) == []
    assert files_containing(line_stack.var, code, skip=(outbox,)) == []
    assert [v for _, v in (result.record.variable_history if result.record else []) if secret_pin in v] == []
    assert [v for _, v in (result.record.variable_history if result.record else []) if code in v] == []
    texts = db_texts(line_stack.settings.db_url)
    assert len(texts) > 100  # the sweep saw the data
    assert [(t, c) for t, c, v in texts if secret_pin in v] == []
    assert [(t, c) for t, c, v in texts if code in v and (t, c) != ("sms_outbox", "text")] == []


def test_withheld_caller_id_on_0505_gives_number_and_pin(line_stack: LocalLine) -> None:
    result = place(line_stack, "0505", "", f"{OLEG},2222#,,1")
    assert result.sipp_exit == 0, result.sipp_errors
    done = actions_of(result)
    assert "subscriber.identify:found" not in done, done
    assert "subscriber.verify_pin:ok" in done, done
    assert "balance.report:ok" in done, done


def test_lockout_holds_across_separate_calls(line_stack: LocalLine) -> None:
    first = place(line_stack, "88005500500", "74957770002", f"{CORP_OWN},1111#,,1112#,,1113#")
    assert actions_of(first).count("subscriber.verify_pin:wrong") == 3, actions_of(first)
    second = place(line_stack, "88005500500", "74957770003", f"{CORP_OWN},1114#,,1115#")
    assert actions_of(second) == ["subscriber.verify_pin:wrong", "subscriber.verify_pin:locked"]
    # A third call with the right PIN: still locked (the caller hears when, and the SMS-code way out).
    third = place(line_stack, "88005500500", "74957770004", f"{CORP_OWN},7777#,,2")
    assert actions_of(third) == ["subscriber.verify_pin:locked"]
