"""The per-call stdio AGI (`ivr agi`) without worker threads: pyst2 runs on the calling thread, a command
Asterisk leaves unanswered ends as ChannelFailed within its timeout, and when the call ends no thread is
left (none blocked on stdin), so the process returns from main by itself.

In-process over pipes (pipe_asterisk: Asterisk answers from a thread that each test joins before it
counts threads), and as the real `ivr agi` child process."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_asterisk import CallScript, agi_header
from pipe_asterisk import PipeAsterisk

from ivr.app.bootstrap import build_app
from ivr.app.session import CallHandler
from ivr.config import PROJECT_ROOT, Settings
from ivr.telephony.agi import AgiProtocolError, AgiResponse
from ivr.telephony.channel import ChannelFailed, ChannelHungUp
from ivr.telephony.stdio_agi import PystTransport, make_pyst_agi, run_stdio_call

IVAN = "79161234567"
REQUEST = "operator?did=0505&trust=yes&roaming=no"
STALL_AT = 'SET VARIABLE IVR_LAST_ACTION "balance.report:ok"'  # after the caller pressed 1: mid-call


def stdio_header() -> bytes:
    return agi_header("ivr-agi", caller=IVAN).replace(b"agi_network: yes\n", b"")


@pytest.fixture(autouse=True)
def sighup_restored() -> Iterator[None]:
    """make_pyst_agi installs pyst2's SIGHUP handler in this process: put the previous one back."""
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


@pytest.fixture
def threads_before() -> set[threading.Thread]:
    return set(threading.enumerate())


def assert_no_thread_left(before: set[threading.Thread]) -> None:
    extra = [t.name for t in threading.enumerate() if t not in before]
    assert extra == [], f"threads left after the call: {extra}"


def open_agi(asterisk: PipeAsterisk, **kwargs: Any) -> Any:
    return make_pyst_agi(asterisk.agi_stdin, asterisk.agi_stdout, **kwargs)


def close_agi(agi: Any) -> None:
    agi.stderr.close()  # pyst2's debug text went to /dev/null


# ---- the transport ----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_an_unanswered_command_fails_within_its_timeout(threads_before: set[threading.Thread]) -> None:
    asterisk = PipeAsterisk(stdio_header(), lambda command: None).start()
    agi = open_agi(asterisk)
    try:
        assert agi.env["agi_callerid"] == IVAN
        transport = PystTransport(agi)
        began = time.monotonic()
        with pytest.raises(ChannelFailed, match="no AGI response"):
            asyncio.run(transport.command("WAIT FOR DIGIT 100", timeout=0.5))
        assert 0.45 <= time.monotonic() - began < 3.0
        # The stream is out of step now (a late answer would be taken for the next command's): the next
        # command fails at once, without being sent.
        began = time.monotonic()
        with pytest.raises(ChannelFailed, match="out of step"):
            asyncio.run(transport.command('SET VARIABLE IVR_RESULT "error"', timeout=5.0))
        assert time.monotonic() - began < 0.5
    finally:
        asterisk.close()
        close_agi(agi)
    assert asterisk.commands == ["WAIT FOR DIGIT 100"]
    assert_no_thread_left(threads_before)


@pytest.mark.timeout(30)
def test_half_a_line_does_not_wait_past_the_deadline() -> None:
    asterisk = PipeAsterisk(stdio_header(), lambda command: None).start()
    agi = open_agi(asterisk)
    try:
        asterisk.send(b"200 resu")
        began = time.monotonic()
        with pytest.raises(ChannelFailed, match="no AGI response"):
            asyncio.run(PystTransport(agi).command("WAIT FOR DIGIT 100", timeout=0.5))
        assert time.monotonic() - began < 3.0
    finally:
        asterisk.close()
        close_agi(agi)


@pytest.mark.timeout(30)
def test_answers_are_parsed_and_a_closed_stdin_is_a_hang_up(threads_before: set[threading.Thread]) -> None:
    answers = iter(["200 result=49", "510 Invalid or unknown command", "200 result=-1"])
    asterisk = PipeAsterisk(stdio_header(), lambda command: next(answers, None)).start()
    agi = open_agi(asterisk)
    transport = PystTransport(agi)

    async def call() -> None:
        assert await transport.command("WAIT FOR DIGIT 100", timeout=2.0) == AgiResponse(200, "49")
        assert (await transport.command("NO SUCH COMMAND", timeout=2.0)).code == 510
        with pytest.raises(ChannelHungUp):
            await transport.command("WAIT FOR DIGIT 100", timeout=2.0)
        asterisk.hang_up()
        began = time.monotonic()
        with pytest.raises(ChannelHungUp):
            await transport.command("WAIT FOR DIGIT 100", timeout=10.0)
        assert time.monotonic() - began < 1.0  # end of file, not the timeout

    try:
        asyncio.run(call())
    finally:
        asterisk.close()
        close_agi(agi)
    assert_no_thread_left(threads_before)


@pytest.mark.timeout(30)
def test_a_header_that_never_ends_is_refused_in_time() -> None:
    asterisk = PipeAsterisk(b"agi_request: ivr-agi\nagi_channel: PJSIP/x\n", lambda command: None).start()
    began = time.monotonic()
    try:
        with pytest.raises(AgiProtocolError, match="header"):
            open_agi(asterisk, header_timeout=0.3)
    finally:
        asterisk.close()
    assert time.monotonic() - began < 3.0


# ---- whole calls in this process (the real wiring: trees, engine, actions, prompts) -----------------


def run_in_process(settings: Settings, asterisk: PipeAsterisk) -> tuple[int, float]:
    """`ivr agi` without the process: the exit code run_stdio_call gives and the seconds it took."""
    app = build_app(settings)
    agi = open_agi(asterisk)
    try:
        handler = CallHandler(app.session, app.voice, read_timeout=0.5)
        began = time.monotonic()
        code = asyncio.run(run_stdio_call(handler, REQUEST, agi))
        return code, time.monotonic() - began
    finally:
        asterisk.close()
        close_agi(agi)
        app.close()


@pytest.mark.timeout(60)
def test_a_whole_call_in_process_leaves_no_thread(
    settings: Settings, threads_before: set[threading.Thread]
) -> None:
    script = CallScript(keys=["1"])
    code, _ = run_in_process(settings, PipeAsterisk(stdio_header(), script.answer).start())
    assert code == 0
    assert ("IVR_LAST_ACTION", "balance.report:ok") in script.history
    assert script.variables["IVR_RESULT"] == "transfer"  # the caller stayed silent after the balance
    assert_no_thread_left(threads_before)


@pytest.mark.timeout(60)
def test_a_stalled_asterisk_ends_the_call_in_process_with_no_thread_left(
    settings: Settings, threads_before: set[threading.Thread]
) -> None:
    script = CallScript(keys=["1"])
    asterisk = PipeAsterisk(
        stdio_header(), lambda command: None if command == STALL_AT else script.answer(command)
    )
    code, seconds = run_in_process(settings, asterisk.start())
    assert code == 1  # the failure outcome: the dialplan's failure path takes over
    assert seconds < 5.0  # one read timeout (0.5 s) after the stall, not a hang
    assert asterisk.commands[-1] == STALL_AT  # nothing more was sent into the out-of-step stream
    assert_no_thread_left(threads_before)


# ---- `ivr agi` as the child process Asterisk starts ---------------------------------------------------


class Lines:
    """Lines from a child's stdout, each read waiting at most until a deadline (the test must never hang
    on a child that does not end)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def next(self, deadline: float) -> bytes | None:
        """The next line; b"" at end of file; None at the deadline."""
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            data = os.read(self.fd, 4096)
            if not data:
                rest, self.buffer = self.buffer, b""
                return rest
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


def start_ivr_agi(settings: Settings, demo_db: str, **env_extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "IVR_VAR_DIR": str(settings.var),
            "IVR_DATABASE_URL": demo_db,
            "IVR_SOUNDS_DIR": str(settings.sounds),
            **env_extra,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "agi", REQUEST],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert proc.stdin is not None
    proc.stdin.write(stdio_header())
    proc.stdin.flush()
    return proc


def finish(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int | None, str]:
    """The exit code (None: still running at the deadline, then killed) and stderr."""
    try:
        code: int | None = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    err = proc.stderr.read().decode()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        stream.close()
    return code, err


@pytest.mark.timeout(120)
def test_ivr_agi_exits_by_itself_when_asterisk_stops_answering(settings: Settings, demo_db: str) -> None:
    """Asterisk stops answering mid-call but keeps stdin open: `ivr agi` gives up after its read timeout
    and exits by itself with the failure code and no traceback."""
    proc = start_ivr_agi(settings, demo_db, IVR_AGI_READ_TIMEOUT="1")
    assert proc.stdin is not None and proc.stdout is not None
    lines = Lines(proc.stdout.fileno())
    script = CallScript(keys=["1"])
    deadline = time.monotonic() + 60
    stalled_at = None
    stray: list[bytes] = []
    while True:
        raw = lines.next(deadline)
        if not raw:  # end of file: the call is over (None: the test's own deadline)
            ended = raw == b""
            break
        command = raw.decode().rstrip("\n")
        if stalled_at is not None:
            stray.append(raw)  # nothing may follow the unanswered command
            continue
        if command == STALL_AT:
            stalled_at = time.monotonic()
            continue  # never answered; stdin stays open
        proc.stdin.write(script.answer(command).encode() + b"\n")
        proc.stdin.flush()
    code, err = finish(proc, time.monotonic() + 15)
    assert stalled_at is not None, err[-2000:]
    assert ended, f"ivr agi kept stdout open after the stall; stderr: {err[-2000:]}"
    assert code == 1, f"exit code {code}; stderr: {err[-2000:]}"
    assert stray == []
    assert "Traceback" not in err, err[-3000:]
    assert "channel failed: ChannelFailed" in err
    assert "call ended result=error" in err


@pytest.mark.timeout(120)
def test_ivr_agi_exits_promptly_when_its_stdin_closes(settings: Settings, demo_db: str) -> None:
    """Asterisk goes away (closes the pipe) while a command waits for its answer: the process notices the
    end of file at once (not after the read timeout) and ends normally."""
    proc = start_ivr_agi(settings, demo_db)  # the default read timeout: 30 s
    assert proc.stdin is not None and proc.stdout is not None
    lines = Lines(proc.stdout.fileno())
    script = CallScript()
    deadline = time.monotonic() + 60
    while True:
        raw = lines.next(deadline)
        assert raw, "the call never reached the main menu"
        command = raw.decode().rstrip("\n")
        if command.startswith("WAIT FOR DIGIT"):
            break
        proc.stdin.write(script.answer(command).encode() + b"\n")
        proc.stdin.flush()
    closed = time.monotonic()
    proc.stdin.close()
    code, err = finish(proc, closed + 10)
    assert code is not None and time.monotonic() - closed < 10, err[-2000:]
    assert code == 0, err[-2000:]  # the caller hung up: not a failure of the line
    assert "Traceback" not in err, err[-3000:]
    assert "caller hung up" in err
