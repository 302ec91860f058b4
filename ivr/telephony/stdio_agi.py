"""The per-call stdio AGI entry (`ivr agi`, via var/asterisk/etc/ivr-agi): Asterisk starts one process per
call and talks AGI over stdin/stdout. pyst2 reads the header and exchanges the commands; the same
AgiChannel and Session as FastAGI run the call.

stdout is the protocol: nothing else may write to it (logging goes to stderr and var/log). pyst2 installs a
SIGHUP handler (Asterisk's hang-up signal; so `make_pyst_agi` must run on the main thread); its debug text
(which would include collected keys) is discarded.

No threads and no signals bound the reads. pyst2 runs on the main thread, in the event loop's own thread,
over `FdLines` / `FdWriter` instead of sys.stdin / sys.stdout: pyst2 still formats the commands and parses
the answers, but every line it reads comes from `FdLines.readline`, which waits for stdin with
`select` up to the current command's deadline and then raises `ReadTimeout`. So an unanswered command ends
as ChannelFailed within its timeout, nothing is ever left blocked on stdin, and when the call ends the
process simply returns from main.

Why not the alternatives: a worker thread per command (the earlier design) leaves the thread blocked in
readline after a timeout, so the process could only end with os._exit; SIGALRM raising into the main thread
would interrupt the read, but its exception can land at any bytecode (after the line was consumed, inside
pyst2's parsing, inside a `finally`), inside a half-filled TextIOWrapper buffer, and it takes the
process-wide alarm. A select on an fd whose bytes only `FdLines` buffers has none of these problems.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import time
from collections.abc import Callable
from typing import Any

from ivr.telephony.agi import (
    HEADER_TIMEOUT,
    MAX_LINE,
    AgiProtocolError,
    AgiRequest,
    AgiResponse,
    parse_request,
)
from ivr.telephony.agi_channel import AgiChannel
from ivr.telephony.channel import ChannelFailed, ChannelHungUp
from ivr.telephony.fastagi import AgiCallHandler

log = logging.getLogger(__name__)


class ReadTimeout(Exception):
    """No complete AGI line before the deadline. Deliberately not an OSError (TimeoutError is one): pyst2
    catches IOError around its reads, and this must pass through it untouched."""


class LineTooLong(Exception):
    """A line longer than MAX_LINE: the peer does not speak AGI."""


class EndOfInput(Exception):
    """stdin is closed and every line of it was read: Asterisk is gone. (pyst2 cannot take the "" a file
    gives at its end: it fails with ValueError on `int("")`.)"""


class FdLines:
    """Lines read from a file descriptor (stdin), for pyst2's `stdin.readline()`. Bytes are read with
    os.read only after select says they are there, and kept here until a whole line has arrived, so a read
    never blocks past `deadline` (time.monotonic; None: no limit) and a timed-out read leaves no state
    behind in any Python buffer. At end of file `readline` returns a last line without its newline if there
    is one, then raises EndOfInput."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.deadline: float | None = None
        self._buffer = bytearray()
        self._eof = False

    def readline(self) -> str:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0 and self._eof and not self._buffer:
                raise EndOfInput
            if end >= 0 or self._eof:
                size = end + 1 if end >= 0 else len(self._buffer)
                line = bytes(self._buffer[:size])
                del self._buffer[:size]
                if len(line) > MAX_LINE:
                    raise LineTooLong(f"AGI line of {len(line)} bytes")
                return line.decode("utf-8", errors="replace")
            if len(self._buffer) > MAX_LINE:
                raise LineTooLong(f"AGI line of more than {MAX_LINE} bytes")
            self._fill()

    def _fill(self) -> None:
        timeout = None
        if self.deadline is not None:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise ReadTimeout
        # select is retried after a signal (PEP 475: pyst2's SIGHUP handler only sets a flag).
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            raise ReadTimeout
        data = os.read(self.fd, 4096)
        if not data:
            self._eof = True
        self._buffer += data


class FdWriter:
    """pyst2's `stdout`: each command goes straight to the file descriptor with os.write, so nothing waits
    in a Python buffer (a failed write would otherwise be retried, and fail again, at interpreter exit).
    A closed pipe raises BrokenPipeError (errno 32), which pyst2 turns into AGISIGPIPEHangup."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, text: str) -> int:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(self.fd, data) :]
        return len(text)

    def flush(self) -> None:
        return None


class PystTransport:
    """AgiTransport over pyst2's blocking AGI object (made by `make_pyst_agi`), on the calling thread.

    `command` blocks the event loop while it waits for Asterisk's answer. That is deliberate: the process
    serves one call, so there is nothing else for the loop to do but the call's own helpers (the speech
    model loading in a thread, the recognizer in a thread), which only need the loop between commands:
    `command` yields to the loop once before it blocks, so their results are taken in between. The wait
    is bounded: FdLines raises ReadTimeout at the deadline, and the call ends as ChannelFailed.

    After a timeout the stream is out of step (a late answer would be read as the next command's), so the
    transport refuses every later command at once: the call ends without waiting another timeout for
    each of them, and with IVR_RESULT unset the dialplan takes its failure path."""

    def __init__(self, agi: Any) -> None:
        lines = getattr(agi, "stdin", None)
        if not isinstance(lines, FdLines):
            raise TypeError("PystTransport needs an AGI from make_pyst_agi (stdin must be FdLines)")
        self.agi = agi
        self.lines = lines
        self.broken: str | None = None

    def _execute(self, text: str, timeout: float) -> AgiResponse:
        from asterisk import agi as pyst

        self.lines.deadline = time.monotonic() + timeout
        try:
            result = self.agi.execute(text)
        except ReadTimeout as exc:
            self.broken = f"no AGI response in {timeout:.0f} s"
            raise ChannelFailed(self.broken) from exc
        except EndOfInput as exc:
            raise ChannelHungUp("AGI stdin closed") from exc
        except LineTooLong as exc:
            self.broken = "AGI line too long"
            raise AgiProtocolError(self.broken) from exc
        except ValueError as exc:  # pyst2's int() of a line that does not start with a code
            self.broken = "not an AGI response"
            raise AgiProtocolError(self.broken) from exc
        except pyst.AGIHangup as exc:
            raise ChannelHungUp(type(exc).__name__) from exc
        except pyst.AGIAppError as exc:  # result=-1: hang-up or failure
            raise ChannelHungUp("result -1") from exc
        except pyst.AGIInvalidCommand:
            return AgiResponse(code=510)
        except pyst.AGIUsageError:
            return AgiResponse(code=520)
        except pyst.AGIUnknownError as exc:  # a code pyst2 does not know (100, 511 dead channel, ...)
            raise ChannelHungUp("no AGI response") from exc
        except OSError as exc:
            raise ChannelFailed(str(exc)) from exc
        finally:
            self.lines.deadline = None
        value, data = result.get("result", ("", ""))
        return AgiResponse(code=200, result=str(value), data=str(data or ""))

    async def command(self, text: str, *, timeout: float, after_hangup: bool = False) -> AgiResponse:
        if self.broken is not None:
            raise ChannelFailed(f"AGI stream out of step ({self.broken})")
        # Let the loop run what is ready (callbacks from helper threads, tasks just created) before the
        # blocking wait: without this yield a task such as the recognizer being made would never start.
        await asyncio.sleep(0)
        return self._execute(text, timeout)

    async def close(self) -> None:
        return None


async def run_stdio_call(
    handler: AgiCallHandler,
    script: str | None,
    agi: Any,
    make_channel: Callable[[AgiRequest, PystTransport], AgiChannel] | None = None,
) -> int:
    """Run one call. `make_channel` builds a different channel over the same transport (EAGI); a channel
    with a `close()` (EAGI's audio reader) is closed when the call ends."""
    env = {str(k): str(v) for k, v in agi.env.items()}
    if not env:
        raise AgiProtocolError("empty AGI header")
    if script is None:  # AGI(ivr-agi,operator?did=...) passes the request as the first argument
        script = env.get("agi_arg_1", "")
    request = parse_request(env, script)
    transport = PystTransport(agi)
    if make_channel is not None:
        channel = make_channel(request, transport)
    else:
        channel = AgiChannel(
            transport,
            handler.voice,
            request.line,
            handler.default_language,
            read_timeout=handler.read_timeout,
        )
    try:
        outcome = await handler.run_call(request, channel)
    finally:
        close = getattr(channel, "close", None)
        if callable(close):
            close()
    return 0 if outcome is not None and outcome.result != "error" else 1


def make_pyst_agi(stdin: int = 0, stdout: int = 1, *, header_timeout: float = HEADER_TIMEOUT) -> Any:
    """pyst2's AGI over the file descriptors `stdin` and `stdout` (the process's own by default); reads the
    AGI header, which must arrive within `header_timeout` seconds (AgiProtocolError otherwise). Call it on
    the main thread: pyst2 installs its SIGHUP handler.

    pyst2 writes every command and every result line to its `stderr` (the keys of a PIN arrive as
    `200 result=49` ...), so that text is discarded rather than logged: nothing secret may reach a log."""
    from asterisk.agi import AGI

    lines = FdLines(stdin)
    lines.deadline = time.monotonic() + header_timeout
    devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - pyst2 keeps it for the whole call
    try:
        agi = AGI(stdin=lines, stdout=FdWriter(stdout), stderr=devnull)
    except ReadTimeout as exc:
        devnull.close()
        raise AgiProtocolError("AGI header not complete in time") from exc
    except LineTooLong as exc:
        devnull.close()
        raise AgiProtocolError("AGI line too long in the header") from exc
    except EndOfInput as exc:
        devnull.close()
        raise ChannelHungUp("stdin closed during the AGI header") from exc
    finally:
        lines.deadline = None
    return agi
