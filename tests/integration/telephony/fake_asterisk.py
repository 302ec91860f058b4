"""A fake Asterisk for AGI tests: sends the AGI header, answers commands from a script, records what the
server asked for. Over TCP (FastAGI) or over pipes (stdio AGI)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field


def agi_header(
    script: str, *, caller: str = "79161234567", uniqueid: str = "1700000000.1", extension: str = "0505"
) -> bytes:
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1/{script}",
        "agi_channel": "PJSIP/tester-00000001",
        "agi_language": "ru",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid,
        "agi_version": "22.10.1",
        "agi_callerid": caller,
        "agi_calleridname": "tester",
        "agi_context": "ivr-entry",
        "agi_extension": extension,
        "agi_priority": "7",
        "agi_enhanced": "0.0",
        "agi_threadid": "140000000000000",
    }
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


@dataclass
class CallScript:
    """Answers like Asterisk would. `keys` are pressed one per WAIT FOR DIGIT (then silence); `barge`
    maps a prompt file name fragment to a key pressed while it plays."""

    keys: list[str] = field(default_factory=list)
    barge: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    history: list[tuple[str, str]] = field(default_factory=list)  # (name, value) of every SET VARIABLE
    commands: list[str] = field(default_factory=list)
    streamed: list[str] = field(default_factory=list)

    def answer(self, command: str) -> str:
        self.commands.append(command)
        if command.startswith("STREAM FILE"):
            match = re.match(r'STREAM FILE "((?:[^"\\]|\\.)*)" "([^"]*)"', command)
            name = match.group(1) if match else ""
            self.streamed.append(name)
            for fragment, key in list(self.barge.items()):
                if fragment in name and match and key in match.group(2):
                    del self.barge[fragment]
                    return f"200 result={ord(key)} endpos=800"
            return "200 result=0 endpos=8000"
        if command.startswith("WAIT FOR DIGIT"):
            if self.keys:
                return f"200 result={ord(self.keys.pop(0))}"
            return "200 result=0 (timeout)"
        if command.startswith("SET VARIABLE"):
            match = re.match(r'SET VARIABLE (\S+) "((?:[^"\\]|\\.)*)"', command)
            if match:
                self.variables[match.group(1)] = match.group(2)
                self.history.append((match.group(1), match.group(2)))
            return "200 result=1"
        if command.startswith("CHANNEL STATUS"):
            return "200 result=6"  # up: the caller is still there
        if command.startswith("GET FULL VARIABLE"):
            return "200 result=0"  # as Asterisk answers for an expression with no value (no queues here)
        return "510 Invalid or unknown command"


async def run_fake_call(
    port: int, header: bytes, script: CallScript, *, max_commands: int = 500
) -> CallScript:
    """One call over TCP: header, then answer every command until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header)
    await writer.drain()
    try:
        for _ in range(max_commands):
            line = await reader.readline()
            if not line:
                break
            writer.write(script.answer(line.decode().rstrip("\n")).encode() + b"\n")
            await writer.drain()
        else:
            raise AssertionError("the server never ended the call")
    finally:
        writer.close()
        await writer.wait_closed()
    return script


Responder = Callable[[str], str]
