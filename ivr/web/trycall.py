"""Trying a call in the browser against a draft: the real Session, engine and actions of the line (the
same `build_app` as `ivr serve` and `ivr call`), on the demo database `var/console-demo.sqlite3`, never
the line's own accounts. The browser sends keys, typed phrases or silence; the call runs until it waits for
the caller again, and the page gets the prompts heard since (text and audio) and the nodes visited.

A try call lives in the console's process: at most MAX_CALLS at once, each ended after IDLE_SECONDS
without input."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.app.bootstrap import LineApp, build_app
from ivr.config import Settings
from ivr.engine.commands import Collect, PromptRef, Transfer
from ivr.engine.events import CallStarted, Digits, NoInput, Speech
from ivr.telephony.channel import ChannelHungUp
from ivr.testbed.demo_data import init_demo
from ivr.web.files import make_scratch

log = logging.getLogger(__name__)

MAX_CALLS = 20
IDLE_SECONDS = 600.0
STEP_SECONDS = 30.0  # an action of the demo line answers far sooner; past this the page says so
DEMO_DB = "console-demo.sqlite3"


@dataclass
class Heard:
    key: str
    text: str
    values: dict[str, str]
    language: str
    ref: PromptRef = field(repr=False)


class TryChannel:
    """A CallChannel that records what the caller would hear and waits for the browser's next input."""

    def __init__(self, describe: Any, language: str) -> None:
        self.describe = describe
        self.language = language
        self.heard: list[Heard] = []
        self.events: list[str] = []
        self.waiting: Collect | None = None
        self.inbox: asyncio.Queue[Digits | Speech | NoInput | None] = asyncio.Queue()
        self.settled = asyncio.Event()
        self.ended = ""

    def _hear(self, prompts: Sequence[PromptRef]) -> None:
        for ref in prompts:
            self.heard.append(
                Heard(
                    ref.key,
                    self.describe(self.language, ref),
                    {k: str(v) for k, v in ref.values.items()},
                    self.language,
                    ref,
                )
            )

    async def play(self, prompts: Sequence[PromptRef], *, barge_in: bool) -> str:
        self._hear(prompts)
        return ""

    async def collect(self, command: Collect, typed_ahead: str) -> Digits | Speech | NoInput:
        self._hear(command.prompts)
        self.waiting = command
        self.settled.set()
        event = await self.inbox.get()
        self.waiting = None
        if event is None:
            raise ChannelHungUp()
        if isinstance(event, Digits) and command.terminator and event.digits.endswith(command.terminator):
            event = Digits(event.digits[: -len(command.terminator)])
        return event

    async def set_variable(self, name: str, value: str) -> None:
        return None

    async def set_language(self, language: str) -> None:
        self.language = language
        self.events.append(f"language {language}")

    async def queue_status(self, queue: str) -> None:
        return None  # no operator queues here: a transfer ends the try call

    async def transfer(self, command: Transfer) -> None:
        self.ended = f"transfer to the {command.queue} queue ({command.reason})"

    async def hangup(self, reason: str) -> None:
        self.ended = f"hang up ({reason})"

    def trace(self, text: str) -> None:
        self.events.append(text)


@dataclass
class TryCall:
    id: str
    line: str
    owner: str
    scratch: Path
    app: LineApp
    channel: TryChannel
    session: Any
    task: asyncio.Task[Any] | None = None
    path: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    shown: int = 0
    touched: float = field(default_factory=time.monotonic)

    def node(self) -> str:
        return str(getattr(self.session.state, "node", "") or "")

    def note_node(self) -> None:
        """Nodes the call went through since the last look (the engine counts every visit, also of the
        nodes it passes within one step), then the node it is at."""
        visits = dict(getattr(self.session.state, "visits", {}) or {})
        for node, count in visits.items():
            if count > self.seen.get(node, 0) and node != self.node():
                self.path.append(node)
        self.seen = visits
        node = self.node()
        if node and (not self.path or self.path[-1] != node):
            self.path.append(node)


def demo_settings(settings: Settings, prompts: Path) -> Settings:
    db = settings.var / DEMO_DB
    return dataclasses.replace(
        settings, prompts_dir=prompts, database_url=f"sqlite:///{db}", call_records=False
    )


class TryCalls:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.calls: dict[str, TryCall] = {}
        self._demo_ready = False

    def _ensure_demo(self) -> None:
        if not self._demo_ready:
            self.settings.var.mkdir(parents=True, exist_ok=True)
            init_demo(f"sqlite:///{self.settings.var / DEMO_DB}")
            self._demo_ready = True

    def service_numbers(self, line: str) -> list[tuple[str, bool]]:
        """The line's service numbers with whether caller ID is trusted on each."""
        from ivr.app.lines import load_service_numbers

        table = load_service_numbers(self.settings.prompts)
        return sorted({(n.number, n.trust) for n in table.numbers.values() if n.line == line})

    async def start(
        self, line: str, owner: str, files: Mapping[str, str], *, caller: str | None, did: str, language: str
    ) -> TryCall:
        await self.expire()
        mine = [c for c in self.calls.values() if c.owner == owner]
        for old in mine[:-2]:  # a person keeps a few at most
            await self.end(old.id)
        if len(self.calls) >= MAX_CALLS:
            raise RuntimeError("too many try calls at once; end one or wait a few minutes")
        scratch = make_scratch(self.settings.prompts, line, files)
        try:
            await asyncio.to_thread(self._ensure_demo)
            settings = demo_settings(self.settings, scratch)
            app = await asyncio.to_thread(build_app, settings)
        except BaseException:
            shutil.rmtree(scratch.parent, ignore_errors=True)
            raise
        voice = app.voice

        def describe(lang: str, ref: PromptRef) -> str:
            try:
                return str(voice.text(line, lang, ref))
            except Exception:
                return f"<{ref.key}>"

        channel = TryChannel(describe, language)
        call = CallStarted(
            line=line,
            did=did,
            caller_id=caller or None,
            language=language,
            facts={"caller_id_trusted": True, "roaming": False},
            call_id=f"console-{uuid.uuid4().hex[:12]}",
        )
        try:
            session = app.session(call, channel)
        except LookupError as exc:
            app.close()
            shutil.rmtree(scratch.parent, ignore_errors=True)
            raise RuntimeError(f"{did} is not a service number of line {line}") from exc
        tc = TryCall(secrets.token_urlsafe(12), line, owner, scratch, app, channel, session)
        self.calls[tc.id] = tc
        tc.task = asyncio.create_task(self._run(tc))
        await self._settle(tc)
        return tc

    async def _run(self, tc: TryCall) -> None:
        try:
            await tc.session.run()
        finally:
            tc.note_node()
            if not tc.channel.ended:
                tc.channel.ended = "the caller hung up"
            tc.channel.settled.set()

    async def _settle(self, tc: TryCall) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tc.channel.settled.wait(), STEP_SECONDS)
        tc.channel.settled.clear()
        tc.note_node()
        tc.touched = time.monotonic()

    async def send(self, tc: TryCall, event: Digits | Speech | NoInput | None) -> None:
        if tc.channel.ended or tc.channel.waiting is None:
            return
        await tc.channel.inbox.put(event)
        await self._settle(tc)

    async def end(self, call_id: str) -> None:
        tc = self.calls.pop(call_id, None)
        if tc is None:
            return
        if tc.task is not None and not tc.task.done():
            await tc.channel.inbox.put(None)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(tc.task, 5.0)
        await asyncio.to_thread(tc.app.close)
        shutil.rmtree(tc.scratch.parent, ignore_errors=True)

    async def expire(self) -> None:
        now = time.monotonic()
        for tc in list(self.calls.values()):
            if now - tc.touched > IDLE_SECONDS or (tc.channel.ended and now - tc.touched > 60):
                await self.end(tc.id)

    async def close(self) -> None:
        for call_id in list(self.calls):
            await self.end(call_id)

    def get(self, call_id: str, owner: str) -> TryCall | None:
        tc = self.calls.get(call_id)
        return tc if tc is not None and tc.owner == owner else None

    @staticmethod
    def view(tc: TryCall) -> dict[str, Any]:
        """What the page shows: the prompts heard since the last view, the path, and what is asked now."""
        new = tc.channel.heard[tc.shown :]
        first = tc.shown
        tc.shown = len(tc.channel.heard)
        waiting = tc.channel.waiting
        return {
            "id": tc.id,
            "heard": [
                {"n": first + i, "key": h.key, "text": h.text, "values": h.values, "language": h.language}
                for i, h in enumerate(new)
            ],
            "path": list(tc.path),
            "node": tc.node(),
            "waiting": None
            if waiting is None
            else {
                "max_digits": waiting.max_digits,
                "secret": waiting.secret,
                "phrases": list(waiting.grammar),
            },
            "ended": tc.channel.ended,
        }
