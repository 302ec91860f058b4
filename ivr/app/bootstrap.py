"""Wiring for the telephony entry points: settings -> trees + engine + prompt voice + actions -> Session.

One `LineApp` per process (the FastAGI server, or one stdio AGI call): it loads the trees once (TreeStore
keeps the last good version and reloads on SIGHUP), opens the database once, and builds a `Session` per
call. Actions run the domain code in a worker thread (`asyncio.to_thread`) with their own transaction, so
the event loop keeps serving other calls while one waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ivr.app import actions
from ivr.app.lines import LinesFileError, load_service_numbers
from ivr.app.queueing import BookCallback, CallbackAsk, QueuePolicy, queue_prompt_keys
from ivr.app.queues import queue_problems, served_queues
from ivr.app.records import CallRecords, CallTrace
from ivr.app.session import ActionInvoker, Session
from ivr.app.sms import SmsPump, mail_sender_from_settings, sender_from_settings
from ivr.config import Settings, StartupRefused
from ivr.db.migrate import current_revision, head_revision
from ivr.db.models import SmsOutbox
from ivr.db.session import DEFAULT_TIMEOUTS, DbTimeouts, make_uow_factory
from ivr.engine.commands import InvokeAction
from ivr.engine.engine import Engine
from ivr.engine.events import ActionResult, CallStarted
from ivr.engine.tree import Tree
from ivr.prompts.render import MANIFEST, check_prompts
from ivr.prompts.voice import PromptVoice
from ivr.services import callbacks
from ivr.telephony.channel import CallChannel
from ivr.trees.checks import prompt_keys
from ivr.trees.store import TreeStore
from ivr.trees.texts import TextCatalog

log = logging.getLogger(__name__)

# Any action that writes may have queued an SMS (a one-time code, a password, a voucher, a card number):
# delivery starts as soon as it commits, so the caller who hears "we sent you a code" already has it,
# instead of waiting for the pump's next round.
_WRITERS = frozenset(name for name, action in actions.REGISTRY.items() if action.writes)


class UnknownLine(LookupError):
    """The dialplan asked for a line that has no (valid) tree."""


class SchemaOutOfDate(StartupRefused):
    """The database is not at the migration this code needs: every action would fail mid-call."""


def db_timeouts(settings: Settings) -> DbTimeouts:
    return DbTimeouts(
        connect=settings.db_connect_timeout,
        lock=settings.db_lock_timeout,
        statement=settings.db_statement_timeout,
    )


def check_schema(url: str, timeouts: DbTimeouts = DEFAULT_TIMEOUTS) -> None:
    """Refuse to serve on a database whose schema is behind (or ahead of) the code. An unreachable or
    unanswering database is only logged, and never waited on past its connect timeout: the server
    listens, calls get the apology and an operator, and actions recover when it returns."""
    box: dict[str, Any] = {}

    def look() -> None:
        try:
            box["current"] = current_revision(url, timeouts)
        except Exception as exc:  # the driver's own error types differ per database
            box["error"] = exc

    # The connect timeout bounds the driver; a thread with a deadline bounds everything else (a server
    # that answers the handshake and then freezes).
    probe = threading.Thread(target=look, name="schema-check", daemon=True)
    probe.start()
    probe.join((timeouts.connect or 5.0) + 5.0)
    if probe.is_alive():
        log.warning("database gave no answer at start; serving without it: actions fail until it answers")
        return
    if "error" in box:
        log.warning(
            "database not reachable at start (%s); actions will fail until it is", type(box["error"]).__name__
        )
        return
    current, head = box["current"], head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"database schema is at {current or 'nothing'}, this version needs {head}: run `ivr db migrate`"
        )


@dataclass
class LineApp:
    settings: Settings
    trees: TreeStore
    voice: PromptVoice
    invoker_for: Any = None  # (call: CallStarted) -> ActionInvoker; tests may replace it
    _uow_factory: Any = field(default=None, repr=False)
    _sms_pump: Any = field(default=None, repr=False)
    # The service-number table (prompts/numbers/service_numbers.yaml, ivr.app.lines): loaded at start
    # and on reload.
    service_numbers: Any = None
    _watch_stop: threading.Event | None = field(default=None, repr=False)
    _watcher: threading.Thread | None = field(default=None, repr=False)
    # Told, on the event loop, how long each action waited for a free worker thread (seconds): `ivr serve`
    # turns new calls away while actions queue (ivr.telephony.fastagi, overload protection).
    on_action_wait: Callable[[float], None] | None = None
    # Told each action's name, status and duration in its thread (ivr.app.metrics.LineMetrics.action_done).
    on_action_done: Callable[[str, str, float], None] | None = None

    def reload(self) -> None:
        """SIGHUP: re-read trees, texts and the service-number table. Calls in progress keep the tree they
        started with."""
        self.reload_changed()
        self._load_service_numbers(keep_old=True)
        log.info("reloaded trees (%s) and prompt texts", ",".join(self.trees.lines()) or "none")

    def reload_changed(self) -> None:
        """Take the lines whose files changed, each as one set: the tree, its texts and (when serving)
        their rendered audio. The voice then speaks the texts of the sets in service, never an edit that
        was refused: callers once heard two values swapped after a text edit, because texts and trees
        reloaded separately."""
        refused = self.trees.reload()
        for line, errors in refused.items():
            log.warning(
                "reload: line %s refused with %d errors (first: %s); the previous version keeps serving",
                line,
                len(errors),
                errors[0],
            )
        self._sync_voice()

    def _sync_voice(self) -> None:
        """The voice's own texts become those of the sets in service (tools and the fallback of views),
        and each set's view is made now rather than on the first call after a reload."""
        for line in self.trees.lines():
            texts = self.trees.texts(line)
            self.voice.use_texts(texts)
            self.voice.for_texts(texts)

    def start_watching(self, interval: float = 2.0) -> None:
        """Re-check the files every `interval` seconds in a thread of its own: a reload (parsing, checks,
        the audio check) never runs on a call's path or the event loop."""
        stop = self._watch_stop = threading.Event()

        def watch() -> None:
            while not stop.wait(interval):
                try:
                    self.reload_changed()
                except Exception:  # the watcher must outlive any one bad edit
                    log.exception("reload failed; the sets in service stay")

        self._watcher = threading.Thread(target=watch, name="tree-watcher", daemon=True)
        self._watcher.start()

    def _load_service_numbers(self, *, keep_old: bool = False) -> Any:
        try:
            self.service_numbers = load_service_numbers(self.settings.prompts)
        except LinesFileError as exc:
            if not keep_old or self.service_numbers is None:
                raise
            log.error("reload: %s; the previous service-number table stays", exc)
        return self.service_numbers

    def session(self, call: CallStarted, channel: CallChannel) -> Session:
        # The server's own table decides the line, the caller ID's trust and roaming (never the dialplan
        # alone); a number not in it raises UnknownServiceNumber (a LookupError: failure path).
        numbers = self.service_numbers or self._load_service_numbers()
        call = numbers.resolve(call)
        try:
            tree, texts = self.trees.get_set(call.line)
        except KeyError as exc:
            raise UnknownLine(call.line) from exc
        line_settings = getattr(tree, "settings", None)
        queue = getattr(line_settings, "operator_queue", None) or self.settings.operator_queue
        max_seconds = getattr(line_settings, "max_call_seconds", None) or self.settings.max_call_seconds
        invoker = self.invoker_for(call) if self.invoker_for else self._action_invoker(call)
        return Session(
            engine=Engine(tree),
            channel=channel,
            invoke=invoker,
            call=call,
            operator_queue=queue,
            max_call_seconds=float(max_seconds),
            trace=CallTrace() if self.settings.call_records else None,
            queue_policy=QueuePolicy(
                callbacks=self.settings.callbacks, offer_after=float(self.settings.callback_offer_after)
            ),
            book_callback=self._callback_booker(call) if self.settings.callbacks else None,
            # The call speaks the texts of the set its tree came from, to its end: a version published
            # mid-call changes neither its texts nor its audio (the pieces' files are content-addressed).
            prompts=self.voice.for_texts(texts),
        )

    def _callback_booker(self, call: CallStarted) -> BookCallback:
        """Books a callback for `call` in a worker thread, in its own transaction."""

        async def book(ask: CallbackAsk) -> str:
            uow_factory = self._database()

            def run() -> str:
                with uow_factory(write=True) as uow:
                    return callbacks.book(
                        uow,
                        call_id=call.call_id or f"anon-{id(ask)}",
                        line=call.line,
                        did=call.did,
                        queue=ask.queue,
                        number=ask.number,
                        language=call.language,
                        context=dict(ask.context),
                    ).status

            try:
                return await asyncio.to_thread(run)
            except Exception:
                log.exception("booking a callback failed")
                return "error"

        return book

    def call_records(self) -> CallRecords | None:
        """The writer of call records (None when the setting call_records is off)."""
        if not self.settings.call_records:
            return None
        return CallRecords(
            self._database(),
            self.settings.call_record_key or self.settings.ami_secret,
            node=self.settings.node_name,
        )

    def _action_invoker(self, call: CallStarted) -> ActionInvoker:
        uow_factory = self._database()
        writers = _WRITERS

        async def invoke(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
            ctx = actions.ActionContext(
                call_id=call.call_id,
                line=call.line,
                language=str(variables.get("language") or call.language),
                vars=dict(variables),
                uow_factory=uow_factory,
                idempotency_key=command.idempotency_key or f"{call.call_id}:{command.name}",
            )
            submitted = time.monotonic()
            started: list[float] = []

            def run() -> Any:
                started.append(time.monotonic())
                done = actions.invoke(command.name, dict(command.args), ctx)
                started.append(time.monotonic())
                return done

            result = await asyncio.to_thread(run)
            if self.on_action_wait is not None and started:
                self.on_action_wait(started[0] - submitted)
            if self.on_action_done is not None and len(started) == 2:
                self.on_action_done(command.name, result.status, started[1] - started[0])
            if command.name in writers and self._sms_pump is not None:
                self._sms_pump.kick()
            return ActionResult(status=result.status, values=dict(result.values or {}))

        return invoke

    def database(self) -> Any:
        """The line's unit-of-work factory (made on first use)."""
        return self._database()

    def _database(self) -> Any:
        """The unit-of-work factory (one per process) and the SMS outbox pump beside it, made on first use."""
        if self._uow_factory is None:
            self._uow_factory = make_uow_factory(self.settings.db_url, timeouts=db_timeouts(self.settings))
            self._sms_pump = SmsPump(
                self._uow_factory,
                sender_from_settings(self.settings),
                mail_sender=mail_sender_from_settings(self.settings),
            )
            self._sms_pump.start()
        return self._uow_factory

    def last_sms_code(self) -> str | None:
        """The one-time code in the newest one-time-code SMS (simulator and scenarios only: it plays the
        caller's phone reading its messages)."""
        with self._database()(write=False) as uow:
            text = uow.session.scalars(
                select(SmsOutbox.text).where(SmsOutbox.kind == "otp").order_by(SmsOutbox.id.desc())
            ).first()
        match = re.search(r"\b\d{6}\b", text or "")
        return match.group(0) if match else None

    def close(self) -> None:
        """At shutdown: stop watching the files, deliver the SMS still queued, then release the database."""
        if self._watch_stop is not None and self._watcher is not None:
            self._watch_stop.set()
            self._watcher.join(10.0)
        if self._sms_pump is not None:
            self._sms_pump.stop()
            self._sms_pump = None
        if self._uow_factory is not None:
            self._uow_factory.dispose()
            self._uow_factory = None


def audio_check(
    settings: Settings, voice: PromptVoice | None = None
) -> Callable[[Tree, TextCatalog], list[str]]:
    """The server's acceptance check for a new set: every queue its tree names is one the dialplan serves,
    and every prompt it may play (the tree's, and the queue dialog's) has text in the set and audio
    rendered from that very text (the piece files named by its hash), in every language the line offers."""

    served = served_queues()
    speaker = voice if voice is not None else PromptVoice(settings)

    def check(tree: Tree, texts: TextCatalog) -> list[str]:
        keys = prompt_keys(tree) | queue_prompt_keys(settings.callbacks)
        queues = [f"line {lineno}: {message}" for lineno, message in queue_problems(tree, served)]
        candidate = speaker.for_texts(texts, cache=False)  # the set may be refused: not cached
        languages = tree.settings.languages
        return queues + check_prompts(
            settings, tree.line, {lang: keys for lang in languages}, voice=candidate
        )

    return check


def build_app(settings: Settings, *, serving: bool = False) -> LineApp:
    """Load everything a call needs. Refuses to start with no valid line at all, or on a database whose
    schema does not match the code.

    serving (`ivr serve`): a set is taken only with its audio rendered, and the files are re-checked by a
    watcher thread; otherwise (the simulator, `ivr agi`, tests) audio is not required and the store looks
    for changes when asked for a tree."""
    check_schema(settings.db_url, db_timeouts(settings))
    voice = PromptVoice(settings)
    trees = TreeStore(
        settings.prompts,
        actions.catalog(),
        poll_seconds=None if serving else 2.0,
        accept=audio_check(settings, voice) if serving else None,
        also_watch=(settings.sounds / MANIFEST,) if serving else (),
    )
    refused = trees.reload()
    for line, errors in refused.items():
        for error in errors[:10]:
            log.error("line %s: %s", line, error)
    if not trees.lines():
        raise RuntimeError(
            f"no valid tree under {settings.prompts}"
            + (" (or its prompts are not rendered: run `ivr prompts render`)" if serving else "")
        )
    log.info("lines ready: %s", ", ".join(trees.lines()))
    app = LineApp(settings=settings, trees=trees, voice=voice)
    app._sync_voice()
    app._load_service_numbers()  # a broken service-number table stops the start, like a broken tree
    if serving:
        app.start_watching()
    return app
