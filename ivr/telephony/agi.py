"""The AGI wire protocol: the request header, commands and their responses. Nothing else lives here.

Used by the FastAGI server (TCP, asyncio streams) and, through the same `AgiResponse` shape, by the stdio
AGI entry (pyst2). Every read has a timeout and every line a size limit, so a peer that stalls, closes
early or sends garbage ends the call instead of hanging the server.

panoramisk's `fast_agi.Application` reads the header with `while b'\\n\\n' not in buffer: buffer +=
await reader.read(100)`, which spins forever when the peer closes early and grows without bound on a huge
line; it cannot be guarded from outside, so this module is the small reader the server uses instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs

from ivr.telephony.channel import ChannelFailed, ChannelHungUp

log = logging.getLogger(__name__)

MAX_LINE = 8192  # bytes; Asterisk's header lines are far shorter
MAX_HEADER_LINES = 128
HEADER_TIMEOUT = 5.0  # seconds for the whole header: Asterisk sends it at once

_RESPONSE = re.compile(r"^(\d{3})(?:([ -])(.*))?$")
_RESULT = re.compile(r"^result=(-?\d*)\s*(?:\((.*?)\))?\s*(.*)$")
_HEADER = re.compile(r"^(agi_[a-z0-9_]+):\s?(.*)$")


class AgiProtocolError(ChannelFailed):
    """The peer does not speak AGI (garbage, oversized lines, missing header)."""


@dataclass(frozen=True)
class AgiResponse:
    code: int
    result: str = ""  # the value after result=
    data: str = ""  # text in parentheses, e.g. "timeout", "dtmf"
    rest: str = ""  # anything after, e.g. "endpos=1234"

    @property
    def value(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return 0


def parse_response(line: str) -> AgiResponse:
    """One response line -> AgiResponse. Raises ChannelHungUp for HANGUP / 511, AgiProtocolError for
    anything that is not an AGI response."""
    line = line.strip()
    if line == "HANGUP":
        raise ChannelHungUp("HANGUP")
    match = _RESPONSE.match(line)
    if not match:
        raise AgiProtocolError(f"not an AGI response ({len(line)} chars)")
    code = int(match.group(1))
    text = match.group(3) or ""
    if code == 511:
        raise ChannelHungUp("dead channel")
    if code != 200:
        return AgiResponse(code=code, rest=text)
    result = _RESULT.match(text)
    if not result:
        raise AgiProtocolError("200 without result=")
    return AgiResponse(code=200, result=result.group(1), data=result.group(2) or "", rest=result.group(3))


def quote(value: str) -> str:
    """An AGI command argument in double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


@dataclass(frozen=True)
class AgiRequest:
    """The header Asterisk sends first, and what the dialplan asked for in the AGI URL."""

    env: dict[str, str]
    line: str  # first path segment of agi_network_script, e.g. "operator"
    params: dict[str, str]  # query string: did, trust, roaming

    @property
    def caller_id(self) -> str | None:
        raw = self.env.get("agi_callerid", "").strip()
        if raw.lower() in ("", "unknown", "anonymous", "restricted", "private"):
            return None
        return raw

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def language(self) -> str:
        return self.env.get("agi_language", "") or ""

    def flag(self, name: str) -> bool:
        return self.params.get(name, "").lower() in ("yes", "1", "true")


def parse_request(env: dict[str, str], script: str | None = None) -> AgiRequest:
    """Build the request from the header. `script` overrides agi_network_script (stdio: the first
    argument, e.g. "operator?did=0505&trust=yes&roaming=no")."""
    raw = script if script is not None else env.get("agi_network_script", "")
    path, _, query = raw.partition("?")
    line = path.strip("/").split("/")[0] if path else ""
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return AgiRequest(env=env, line=line, params=params)


async def read_header(reader: asyncio.StreamReader, *, timeout: float = HEADER_TIMEOUT) -> dict[str, str]:
    """Read the `agi_*: value` lines up to the blank line. The whole header must arrive within
    `timeout` seconds (slowloris), in at most MAX_HEADER_LINES lines of at most MAX_LINE bytes."""

    async def _read() -> dict[str, str]:
        env: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES + 1):
            raw = await _readline(reader)
            if raw == b"":
                raise ChannelHungUp("peer closed during the AGI header")
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if text == "":
                if not env:
                    raise AgiProtocolError("empty AGI header")
                return env
            match = _HEADER.match(text)
            if not match:
                raise AgiProtocolError("garbage in the AGI header")
            env[match.group(1)] = match.group(2)
        raise AgiProtocolError("AGI header too long")

    try:
        return await asyncio.wait_for(_read(), timeout)
    except TimeoutError as exc:
        raise AgiProtocolError("AGI header not complete in time") from exc


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return b"" if not exc.partial else exc.partial  # EOF: partial line then b"" next time
    except asyncio.LimitOverrunError as exc:
        raise AgiProtocolError("AGI line too long") from exc
    if len(line) > MAX_LINE:
        raise AgiProtocolError("AGI line too long")
    return line


class AgiTransport(Protocol):
    """Sends one AGI command and returns its final response (after 100 Trying, usage text, ...)."""

    async def command(self, text: str, *, timeout: float, after_hangup: bool = False) -> AgiResponse:
        """`after_hangup`: send it even after Asterisk announced the hang-up (a dead channel still takes
        SET VARIABLE: the call's last variables for the dialplan's h extension and CDR)."""
        ...

    async def close(self) -> None: ...


class StreamTransport:
    """AGI over an asyncio stream pair (FastAGI)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.hung_up = False

    async def command(self, text: str, *, timeout: float, after_hangup: bool = False) -> AgiResponse:
        if self.hung_up and not after_hangup:
            raise ChannelHungUp("HANGUP received earlier")
        self.writer.write(text.encode("utf-8") + b"\n")
        try:
            # asyncio.timeout, not wait_for: wait_for wraps the read in a new Task for every command,
            # which was a measurable part of the event loop's work per call.
            async with asyncio.timeout(timeout):
                return await self._response()
        except TimeoutError as exc:
            raise ChannelFailed(f"no AGI response in {timeout:.0f} s") from exc

    async def _response(self) -> AgiResponse:
        if self.writer.transport.get_write_buffer_size():
            await self.writer.drain()
        while True:
            raw = await _readline(self.reader)
            if raw == b"" or not raw.endswith(b"\n"):
                raise ChannelHungUp("AGI connection closed")
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line == "HANGUP":
                # Asterisk announces the caller's hang-up; the command's own answer may still follow.
                self.hung_up = True
                raise ChannelHungUp("HANGUP")
            if line.startswith("520-"):
                await self._skip_usage()
                return AgiResponse(code=520)
            response = parse_response(line)
            if response.code == 100:  # "Trying...": the real answer follows
                continue
            return response

    async def _skip_usage(self) -> None:
        for _ in range(200):
            raw = await _readline(self.reader)
            if raw == b"":
                raise ChannelHungUp("AGI connection closed")
            if raw.startswith(b"520 "):
                return
        raise AgiProtocolError("endless usage text")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
