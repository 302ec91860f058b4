"""The per-call stdio AGI entry (`ivr agi`, via var/asterisk/etc/ivr-agi): Asterisk starts one process per
call and talks AGI over stdin/stdout. pyst2 reads the header and exchanges the commands; the same
AgiChannel and Session as FastAGI run the call.

stdout is the protocol: nothing else may write to it (logging goes to stderr and var/log). pyst2 installs a
SIGHUP handler (Asterisk's hang-up signal); its debug text (which would include collected keys) is discarded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from ivr.telephony.agi import AgiProtocolError, AgiRequest, AgiResponse, parse_request
from ivr.telephony.agi_channel import AgiChannel
from ivr.telephony.channel import ChannelFailed, ChannelHungUp
from ivr.telephony.fastagi import AgiCallHandler

log = logging.getLogger(__name__)


class PystTransport:
    """AgiTransport over pyst2's blocking AGI object; each command runs in a worker thread."""

    def __init__(self, agi: Any) -> None:
        self.agi = agi

    def _execute(self, text: str) -> AgiResponse:
        from asterisk import agi as pyst

        try:
            result = self.agi.execute(text)
        except pyst.AGIHangup as exc:
            raise ChannelHungUp(type(exc).__name__) from exc
        except pyst.AGIAppError as exc:  # result=-1: hang-up or failure
            raise ChannelHungUp("result -1") from exc
        except pyst.AGIInvalidCommand:
            return AgiResponse(code=510)
        except pyst.AGIUsageError:
            return AgiResponse(code=520)
        except pyst.AGIUnknownError as exc:  # includes EOF on stdin (Asterisk closed the pipe)
            raise ChannelHungUp("no AGI response") from exc
        except OSError as exc:
            raise ChannelFailed(str(exc)) from exc
        value, data = result.get("result", ("", ""))
        return AgiResponse(code=200, result=str(value), data=str(data or ""))

    async def command(self, text: str, *, timeout: float) -> AgiResponse:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._execute, text), timeout)
        except TimeoutError as exc:
            raise ChannelFailed(f"no AGI response in {timeout:.0f} s") from exc

    async def close(self) -> None:
        return None


async def run_stdio_call(
    handler: AgiCallHandler,
    script: str | None,
    agi: Any,
    make_channel: Callable[[AgiRequest, PystTransport], AgiChannel] | None = None,
) -> int:
    """Run one call. `make_channel` builds a different channel over the same transport (EAGI)."""
    env = {str(k): str(v) for k, v in agi.env.items()}
    if not env:
        raise AgiProtocolError("empty AGI header")
    if script is None:  # AGI(ivr-agi,operator?did=...) passes the request as the first argument
        script = env.get("agi_arg_1", "")
    request = parse_request(env, script)
    if make_channel is not None:
        channel = make_channel(request, PystTransport(agi))
    else:
        channel = AgiChannel(
            PystTransport(agi),
            handler.voice,
            request.line,
            handler.default_language,
            read_timeout=handler.read_timeout,
        )
    outcome = await handler.run_call(request, channel)
    return 0 if outcome is not None and outcome.result != "error" else 1


def make_pyst_agi() -> Any:
    """pyst2's AGI over the process's stdin/stdout. pyst2 writes every command and every result line to
    its `stderr` (the keys of a PIN arrive as `200 result=49` ...), so that text is discarded rather than
    logged: nothing secret may reach a log."""
    from asterisk.agi import AGI

    return AGI(stdin=sys.stdin, stdout=sys.stdout, stderr=open(os.devnull, "w", encoding="utf-8"))
