"""Wiring for the telephony entry points: settings -> trees + engine + prompt voice + actions -> Session.

One `LineApp` per process (the FastAGI server, or one stdio AGI call): it loads the trees once (TreeStore
keeps the last good version and reloads on SIGHUP), opens the database once, and builds a `Session` per
call. Actions run the domain code in a worker thread (`asyncio.to_thread`) with their own transaction, so
the event loop keeps serving other calls while one waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ivr.config import Settings
from ivr.engine.commands import InvokeAction
from ivr.engine.engine import Engine
from ivr.engine.events import ActionResult, CallStarted
from ivr.prompts.trees import TreeStore
from ivr.prompts.voice import PromptVoice
from ivr.telephony.channel import CallChannel
from ivr.telephony.session import ActionInvoker, Session

log = logging.getLogger(__name__)


class UnknownLine(LookupError):
    """The dialplan asked for a line that has no (valid) tree."""


@dataclass
class LineApp:
    settings: Settings
    trees: TreeStore
    voice: PromptVoice
    invoker_for: Any = None  # (call: CallStarted) -> ActionInvoker; tests may replace it
    _uow_factory: Any = field(default=None, repr=False)
    _sms_pump: Any = field(default=None, repr=False)

    def reload(self) -> None:
        """SIGHUP: re-read trees and texts. Calls in progress keep the tree they started with."""
        refused = self.trees.reload()
        for line, errors in refused.items():
            log.warning(
                "reload: line %s refused with %d errors; the previous version keeps serving",
                line,
                len(errors),
            )
        reload_voice = getattr(self.voice, "reload", None)
        if callable(reload_voice):
            reload_voice()
        log.info("reloaded trees (%s) and prompt texts", ",".join(self.trees.lines()) or "none")

    def session(self, call: CallStarted, channel: CallChannel) -> Session:
        try:
            tree = self.trees.get(call.line)
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
        )

    def _action_invoker(self, call: CallStarted) -> ActionInvoker:
        from ivr.app import actions  # imported late: it pulls in the database layer

        uow_factory = self._database()
        changes_state = {name for name, info in actions.catalog().items() if info.changes_state}

        async def invoke(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
            ctx = actions.ActionContext(
                call_id=call.call_id,
                line=call.line,
                language=str(variables.get("language") or call.language),
                vars=dict(variables),
                uow_factory=uow_factory,
                idempotency_key=command.idempotency_key or f"{call.call_id}:{command.name}",
            )
            result = await asyncio.to_thread(actions.invoke, command.name, dict(command.args), ctx)
            if command.name in changes_state and self._sms_pump is not None:
                self._sms_pump.kick()  # the action may have queued an SMS (password, voucher, card)
            return ActionResult(status=result.status, values=dict(result.values or {}))

        return invoke

    def _database(self) -> Any:
        """The unit-of-work factory (one per process) and the SMS outbox pump beside it, made on first use."""
        if self._uow_factory is None:
            from ivr.app.sms import SmsPump, sender_from_settings
            from ivr.db.session import make_uow_factory

            self._uow_factory = make_uow_factory(self.settings.db_url)
            self._sms_pump = SmsPump(self._uow_factory, sender_from_settings(self.settings))
            self._sms_pump.start()
        return self._uow_factory

    def close(self) -> None:
        """At shutdown: deliver the SMS still queued, then release the database."""
        if self._sms_pump is not None:
            self._sms_pump.stop()
            self._sms_pump = None
        if self._uow_factory is not None:
            self._uow_factory.dispose()
            self._uow_factory = None


def build_app(settings: Settings) -> LineApp:
    """Load everything a call needs. Refuses to start with no valid line at all."""
    catalog = None
    try:
        from ivr.app import actions

        catalog = actions.catalog()
    except ImportError:
        log.warning("ivr.app.actions not available: trees are loaded without the action catalogue")
    trees = TreeStore(settings.prompts, catalog)
    refused = trees.reload()
    for line, errors in refused.items():
        for error in errors[:10]:
            log.error("line %s: %s", line, error)
    if not trees.lines():
        raise RuntimeError(f"no valid tree under {settings.prompts}")
    voice = PromptVoice(settings)
    log.info("lines ready: %s", ", ".join(trees.lines()))
    return LineApp(settings=settings, trees=trees, voice=voice)
