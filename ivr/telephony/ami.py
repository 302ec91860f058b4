"""A small AMI client (panoramisk Manager) to watch calls: channel variables the IVR publishes
(IVR_LAST_ACTION, IVR_SUBSCRIBER, IVR_RESULT), hang-up causes, and the operator stand-in's UserEvents.

Used by `ivr dial` and the e2e tests. Loopback only; the secret comes from settings (var/secrets.toml).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from panoramisk import Manager

from ivr.config import Settings

log = logging.getLogger(__name__)


class AmiError(RuntimeError):
    pass


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager reconnects forever after any connection loss, even after close(); a
    watcher that is done must stay closed."""

    closing = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:
            self._connected = False
            return
        super().connection_lost(exc)

    def connection_made(self, f: Any) -> None:
        if self.closing:
            with contextlib.suppress(Exception):
                transport, _protocol = f.result()
                transport.close()
            return
        super().connection_made(f)


@dataclass
class CallRecord:
    """What AMI told about one call (all channels sharing its Linkedid)."""

    uniqueid: str = ""
    caller_name: str = ""
    caller_num: str = ""
    exten: str = ""
    variables: dict[str, str] = field(default_factory=dict)  # last value of each variable
    variable_history: list[tuple[str, str]] = field(default_factory=list)
    user_events: list[dict[str, str]] = field(default_factory=list)
    hangup_cause: int | None = None
    hangup_text: str = ""
    language: str = ""  # the channel's language when it hung up
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    # When this watcher saw the channel appear and hang up (time.monotonic(); 0.0 = not yet)
    began_at: float = 0.0
    ended_at: float = 0.0


WATCHED_VARIABLES = frozenset(
    {
        "IVR_LAST_ACTION",
        "IVR_SUBSCRIBER",
        "IVR_RESULT",
        "IVR_QUEUE",
        "IVR_TRANSFER_REASON",
        "IVR_LINE",
        "IVR_DID",
        "IVR_TRUST",
        "IVR_ROAMING",
        "AGISTATUS",
    }
)


class CallWatcher:
    """Connects to AMI and records events per call. A call is matched by the caller name the dialer
    puts in P-Asserted-Identity (a per-call token), which Asterisk reports in Newchannel."""

    def __init__(self, settings: Settings, *, record_all: bool = False) -> None:
        self.settings = settings
        self.record_all = record_all  # also calls not placed by the dialer (softphones)
        self.manager: _Manager | None = None
        self.calls: dict[str, CallRecord] = {}  # by Linkedid
        self._by_token: dict[str, CallRecord] = {}
        self._waiting: dict[str, asyncio.Future[CallRecord]] = {}

    async def connect(self, timeout: float = 10.0) -> None:
        if not self.settings.ami_secret:
            raise AmiError("no AMI secret configured (var/secrets.toml or IVR_AMI_SECRET)")
        loop = asyncio.get_running_loop()
        manager = _Manager(
            loop=loop,
            host=self.settings.ami_host,
            port=self.settings.ami_port,
            username=self.settings.ami_user,
            secret=self.settings.ami_secret,
            ping_delay=3600,
            ping_interval=3600,
            reconnect_timeout=1,
        )
        manager.register_event("*", self._on_event)
        self.manager = manager
        logged_in: asyncio.Future[bool] = loop.create_future()

        def on_login(_m: Any) -> None:
            if not logged_in.done():
                logged_in.set_result(True)

        manager.on_login = on_login
        manager.connect()
        try:
            await asyncio.wait_for(logged_in, timeout)
        except TimeoutError as exc:
            await self.close()
            raise AmiError(f"AMI login to {self.settings.ami_host}:{self.settings.ami_port} failed") from exc

    async def close(self) -> None:
        if self.manager is not None:
            self.manager.closing = True
            self.manager.close()
            self.manager = None
            await asyncio.sleep(0)

    def expect(self, token: str) -> asyncio.Future[CallRecord]:
        """A future resolved with the call's record once a channel with caller name `token` appears."""
        future: asyncio.Future[CallRecord] = asyncio.get_running_loop().create_future()
        if token in self._by_token:
            future.set_result(self._by_token[token])
        else:
            self._waiting[token] = future
        return future

    def _on_event(self, _manager: Any, event: Any) -> None:
        name = str(event.get("Event", ""))
        linked = str(event.get("Linkedid", "") or event.get("Uniqueid", ""))
        if name == "Newchannel":
            token = str(event.get("CallerIDName", ""))
            if self.record_all or token in self._waiting or token.startswith("dial-"):
                record = CallRecord(
                    uniqueid=str(event.get("Uniqueid", "")),
                    caller_name=token,
                    caller_num=str(event.get("CallerIDNum", "")),
                    exten=str(event.get("Exten", "")),
                    began_at=time.monotonic(),
                )
                self.calls[linked] = record
                self._by_token[token] = record
                future = self._waiting.pop(token, None)
                if future is not None and not future.done():
                    future.set_result(record)
            return
        found = self.calls.get(linked)
        if found is None:
            return
        self._record_event(found, name, event)

    def _record_event(self, record: CallRecord, name: str, event: Any) -> None:
        if name == "VarSet":
            variable = str(event.get("Variable", ""))
            if variable in WATCHED_VARIABLES:
                value = str(event.get("Value", ""))
                record.variables[variable] = value
                record.variable_history.append((variable, value))
        elif name == "UserEvent":
            record.user_events.append({str(k): str(v) for k, v in dict(event).items()})
        elif name == "Hangup":
            try:
                record.hangup_cause = int(event.get("Cause", "0"))
            except ValueError:
                record.hangup_cause = 0
            record.hangup_text = str(event.get("Cause-txt", ""))
            record.language = str(event.get("Language", ""))
            record.ended_at = time.monotonic()
            record.ended.set()


EventHandler = Callable[[str, dict[str, str]], None]


class AmiLink:
    """`ivr serve`'s own AMI connection, for callbacks and queue waits: never on a call's path.

    It connects in the background and keeps reconnecting (every `reconnect_after` seconds) while Asterisk
    is down or restarting; `connected` says whether it is logged in now. Events go to `on_event` (name,
    fields) on the event loop; handlers must be quick. `originate` refuses at once (False) while the link
    is down and waits at most `timeout` seconds for Asterisk's answer, so nothing ever blocks on AMI."""

    def __init__(
        self,
        settings: Settings,
        on_event: EventHandler,
        *,
        reconnect_after: float = 1.0,
        on_state: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_event = on_event
        self.on_state = on_state
        self.reconnect_after = reconnect_after
        self.manager: _Manager | None = None
        self.connected = False
        self.logins = 0  # successful logins: 1 at start, +1 after each reconnect

    def start(self) -> None:
        if not self.settings.ami_secret:
            raise AmiError("no AMI secret configured (var/secrets.toml or IVR_AMI_SECRET)")
        manager = _Manager(
            loop=asyncio.get_running_loop(),
            host=self.settings.ami_host,
            port=self.settings.ami_port,
            username=self.settings.ami_user,
            secret=self.settings.ami_secret,
            # A half-open connection (Asterisk killed without a FIN) is noticed by the ping within ~20 s.
            ping_delay=10,
            ping_interval=10,
            reconnect_timeout=max(1, int(self.reconnect_after)),
            on_login=self._logged_in,
            on_disconnect=self._lost,
        )
        manager.register_event("*", self._event)
        self.manager = manager
        manager.connect()

    def _logged_in(self, _manager: Any) -> None:
        self.connected = True
        self.logins += 1
        log.info("AMI connected (login %d)", self.logins)
        if self.on_state is not None:
            self.on_state(True)

    def _lost(self, _manager: Any, _exc: Exception | None) -> None:
        if self.connected:
            log.warning("AMI connection lost; reconnecting")
        self.connected = False
        if self.on_state is not None:
            self.on_state(False)

    def _event(self, _manager: Any, event: Any) -> None:
        try:
            self.on_event(str(event.get("Event", "")), {str(k): str(v) for k, v in dict(event).items()})
        except Exception:  # one bad handler must not cut the link
            log.exception("AMI event handler failed")

    async def originate(self, fields: dict[str, Any], *, timeout: float) -> str:
        """Place an asynchronous Originate (`fields`: Channel, Context, Exten, ..., Variable as a list) and
        wait for its outcome: "success" (the channel answered), "failure" (it did not), "refused" (the link
        is down, or Asterisk refused the action), "unknown" (no outcome within `timeout` seconds)."""
        manager = self.manager
        if manager is None or not self.connected:
            return "refused"
        try:
            # panoramisk keeps an async Originate's future open until its OriginateResponse event arrives.
            answer = await asyncio.wait_for(
                manager.send_action({"Action": "Originate", "Async": "true", **fields}), timeout
            )
        except TimeoutError:
            return "unknown"
        except (OSError, AttributeError) as exc:
            log.warning("AMI Originate not sent: %s", type(exc).__name__)
            return "refused"
        messages = answer if isinstance(answer, list) else [answer]
        first = messages[0] if messages else None
        if first is None or str(first.get("Response", "")).lower() != "success":
            log.warning("AMI Originate refused: %s", first.get("Message", "") if first is not None else "")
            return "refused"
        last = messages[-1]
        if last is first:
            return "unknown"  # accepted, but the outcome event was not part of the answer
        return "success" if str(last.get("Response", "")).lower() == "success" else "failure"

    async def close(self) -> None:
        if self.manager is not None:
            self.manager.closing = True
            self.manager.close()
            self.manager = None
            self.connected = False
            await asyncio.sleep(0)
