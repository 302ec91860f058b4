"""Call scenarios: a caller's inputs and what must happen, as YAML. Run by the console simulator (here)
and, for key/silence steps, by the platform's sipp dialer against real Asterisk.

```yaml
name: balance by key 1
line: operator
from: "79161234567"      # caller id ("" or null: withheld)
did: "0505"              # optional; default per line (see DEFAULT_DID)
language: ru             # optional
trusted: true            # optional; default: the DID is not an 8-800 number
roaming: false           # optional
steps:
  - hear: main_menu                # prompt keys heard since the last input, in this order
  - press: "1"                     # DTMF keys (a '#' terminator may be included)
  - action: balance.report:ok      # actions (with status) since the last input
  - hear: [balance_is, balance_menu]
  - not_hear: short_number_tip     # not heard since the last input
  - say: "списания"                # speech (simulator only: sipp cannot speak)
  - silence: true                  # no input until the timeout
  - press: "{sms_code}"            # the one-time code from the newest SMS the line sent (simulator)
result: transfer                   # transfer | hangup | caller_hangup (inputs ran out)
queue: operators                   # optional, with result transfer
```

Expectations are checked against what happened since the previous input step; when the inputs run out the
simulated caller hangs up, and the remaining expectations are checked against the tail of the call.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.engine.commands import Collect, PromptRef, Transfer
from ivr.engine.events import CallStarted, Digits, NoInput, Speech
from ivr.prompts.voice import PromptVoice
from ivr.telephony.channel import ChannelHungUp
from ivr.trees.yamlfile import YamlFileError, read_yaml

log = logging.getLogger(__name__)

SMS_CODE = "{sms_code}"
DEFAULT_DID = {"operator": "0505", "loyalty": "88005553609"}
INPUT_KINDS = ("press", "say", "silence")
EXPECT_KINDS = ("hear", "not_hear", "action")


class ScenarioError(Exception):
    """The scenario file itself is wrong (not a failed expectation)."""


@dataclass
class Step:
    kind: str
    value: Any
    lineno: int = 0


@dataclass
class Scenario:
    name: str
    line: str
    caller_id: str | None
    did: str
    language: str
    trusted: bool
    roaming: bool
    steps: list[Step]
    result: str | None = None
    queue: str | None = None
    file: str = ""

    def call_started(self, call_id: str = "scenario") -> CallStarted:
        return CallStarted(
            line=self.line,
            did=self.did,
            caller_id=self.caller_id,
            language=self.language,
            facts={"caller_id_trusted": self.trusted, "roaming": self.roaming},
            call_id=call_id,
        )

    def inputs_only_keys(self) -> bool:
        """True when sipp can play this scenario (no speech steps)."""
        return all(step.kind != "say" for step in self.steps)


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data, linenos = read_yaml(path)
    except YamlFileError as exc:
        raise ScenarioError(str(exc)) from exc
    if not isinstance(data, dict) or "line" not in data or "steps" not in data:
        raise ScenarioError(f"{path}: a scenario needs line and steps")
    steps: list[Step] = []
    for i, raw in enumerate(data["steps"]):
        lineno = linenos.get(("steps", i), 0)
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ScenarioError(f"{path}:{lineno}: a step is one of {INPUT_KINDS + EXPECT_KINDS}: value")
        ((kind, value),) = raw.items()
        if kind not in INPUT_KINDS + EXPECT_KINDS:
            raise ScenarioError(f"{path}:{lineno}: unknown step {kind!r}")
        if kind in ("hear", "not_hear") and isinstance(value, str):
            value = [value]
        if kind == "press":
            value = str(value)
        steps.append(Step(kind, value, lineno))
    line_name = str(data["line"])
    did = str(data.get("did") or DEFAULT_DID.get(line_name, "0505"))
    caller = data.get("from")
    return Scenario(
        name=str(data.get("name") or path.stem),
        line=line_name,
        caller_id=str(caller) if caller else None,
        did=did,
        language=str(data.get("language") or "ru"),
        trusted=bool(data.get("trusted", not did.startswith("8800"))),
        roaming=bool(data.get("roaming", False)),
        steps=steps,
        result=data.get("result"),
        queue=data.get("queue"),
        file=str(path),
    )


@dataclass
class Transcript:
    """What happened, as the caller and the test see it."""

    lines: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)  # since the last input
    actions: list[str] = field(default_factory=list)  # since the last input
    all_heard: list[str] = field(default_factory=list)
    all_actions: list[str] = field(default_factory=list)
    result: str = ""
    queue: str = ""


@dataclass
class ScenarioOutcome:
    scenario: Scenario
    failures: list[str]
    transcript: Transcript

    @property
    def ok(self) -> bool:
        return not self.failures


def _subsequence(wanted: Sequence[str], got: Sequence[str]) -> bool:
    it = iter(got)
    return all(any(w == g for g in it) for w in wanted)


class ScenarioChannel:
    """A CallChannel whose caller follows a scenario. `describe` turns a prompt into text for the
    transcript (PromptVoice.text when available)."""

    def __init__(
        self,
        scenario: Scenario,
        describe: Callable[[str, PromptRef], str],
        sms_code: Callable[[], str | None] | None = None,
    ) -> None:
        self.scenario = scenario
        # Reads the one-time code the caller's phone would have received (the app's SMS outbox).
        self.sms_code = sms_code
        self.language = scenario.language
        self.describe = describe
        self.transcript = Transcript()
        self.failures: list[str] = []
        self._steps = list(scenario.steps)

    # -- expectations --------------------------------------------------------------------------------

    def check(self, step: Step) -> None:
        t = self.transcript
        where = f"{self.scenario.file}:{step.lineno}"
        if step.kind == "hear" and not _subsequence(step.value, t.heard):
            self.failures.append(f"{where}: expected to hear {step.value}, heard {t.heard}")
        elif step.kind == "not_hear":
            wrong = [k for k in step.value if k in t.heard]
            if wrong:
                self.failures.append(f"{where}: should not hear {wrong}")
        elif step.kind == "action":
            wanted = str(step.value)
            matched = [a for a in t.actions if a == wanted or a.split(":")[0] == wanted]
            if not matched:
                self.failures.append(f"{where}: expected action {wanted}, got {t.actions}")

    def _next_input(self, command: Collect) -> Digits | Speech | NoInput:
        while self._steps:
            step = self._steps.pop(0)
            if step.kind in EXPECT_KINDS:
                self.check(step)
                continue
            self.transcript.heard, self.transcript.actions = [], []
            if step.kind == "press":
                value = step.value
                if SMS_CODE in value:
                    code = self.sms_code() if self.sms_code is not None else None
                    value = value.replace(SMS_CODE, code or "")
                shown = "*" * len(value) if command.secret else value
                self.transcript.lines.append(f"  > press {shown}")
                return Digits(value.rstrip("#") if command.terminator == "#" else value)
            if step.kind == "say":
                self.transcript.lines.append(f"  > say {step.value!r}")
                return Speech(str(step.value))
            self.transcript.lines.append("  > (silence)")
            return NoInput()
        self.transcript.lines.append("  > (hangs up)")
        raise ChannelHungUp()

    def finish(self) -> None:
        """Check the expectations left after the call ended."""
        for step in self._steps:
            if step.kind in EXPECT_KINDS:
                self.check(step)
            else:
                self.failures.append(f"{self.scenario.file}:{step.lineno}: input {step.kind} never asked for")
        self._steps = []

    # -- CallChannel -----------------------------------------------------------------------------------

    def _hear(self, prompts: Sequence[PromptRef]) -> None:
        for ref in prompts:
            self.transcript.heard.append(ref.key)
            self.transcript.all_heard.append(ref.key)
            self.transcript.lines.append(f"  < [{ref.key}] {self.describe(self.language, ref)}")

    async def play(self, prompts: Sequence[PromptRef], *, barge_in: bool) -> str:
        self._hear(prompts)
        return ""

    async def collect(self, command: Collect, typed_ahead: str) -> Digits | Speech | NoInput:
        self._hear(command.prompts)
        return self._next_input(command)

    async def set_variable(self, name: str, value: str) -> None:
        if name == "IVR_LAST_ACTION":
            self.transcript.actions.append(value)
            self.transcript.all_actions.append(value)
            self.transcript.lines.append(f"  = action {value}")

    async def set_language(self, language: str) -> None:
        self.language = language
        self.transcript.lines.append(f"  = language {language}")

    async def queue_status(self, queue: str) -> None:
        return None  # scenarios end at the transfer; queues are the e2e tests' business

    async def transfer(self, command: Transfer) -> None:
        self.transcript.result, self.transcript.queue = "transfer", command.queue
        self.transcript.lines.append(f"  = transfer to {command.queue} ({command.reason})")

    async def hangup(self, reason: str) -> None:
        self.transcript.result = "hangup"
        self.transcript.lines.append(f"  = hang up ({reason})")

    def trace(self, text: str) -> None:
        self.transcript.lines.append(f"  # {text}")


def check_outcome(scenario: Scenario, channel: ScenarioChannel, result: str) -> list[str]:
    channel.finish()
    failures = list(channel.failures)
    t = channel.transcript
    t.result = t.result or result
    if scenario.result and t.result != scenario.result:
        failures.append(f"{scenario.file}: expected the call to end with {scenario.result}, got {t.result}")
    if scenario.queue and t.queue != scenario.queue:
        failures.append(f"{scenario.file}: expected queue {scenario.queue}, got {t.queue or '-'}")
    return failures


def run_scenario(
    scenario: Scenario, app: Any, describe: Callable[[str, str, PromptRef], str]
) -> ScenarioOutcome:
    """Run one scenario through `app.session(call, channel)` (ivr.app.bootstrap.LineApp)."""
    channel = ScenarioChannel(
        scenario, lambda lang, ref: describe(scenario.line, lang, ref), getattr(app, "last_sms_code", None)
    )
    call = scenario.call_started(call_id=f"sim-{Path(scenario.file).stem or 'call'}-{uuid.uuid4().hex[:8]}")
    session = app.session(call, channel)
    channel.describe = call_describer(session, channel.describe)
    outcome = asyncio.run(session.run())
    failures = check_outcome(scenario, channel, str(getattr(outcome, "result", "")))
    return ScenarioOutcome(scenario, failures, channel.transcript)


def call_describer(
    session: Any, fallback: Callable[[str, PromptRef], str]
) -> Callable[[str, PromptRef], str]:
    """(lang, ref) -> what this call hears, from the set of texts it started with (`Session.prompts`, the
    view LineApp.session gives it), like a call over Asterisk; `fallback` (the text files) when the
    session has none or a text is missing."""
    prompts = getattr(session, "prompts", None)
    line = str(getattr(getattr(session, "call", None), "line", ""))
    if prompts is None or not line:
        return fallback

    def describe(lang: str, ref: PromptRef) -> str:
        try:
            return str(prompts.text(line, lang, ref))
        except Exception:  # a simulator shows what it can rather than stop
            return fallback(lang, ref)

    return describe


def prompt_describer(settings: Settings) -> Callable[[str, str, PromptRef], str]:
    """(line, lang, ref) -> what the caller hears, as text (PromptVoice), or the key and values."""
    voice: Any = None
    try:
        voice = PromptVoice(settings)
    except Exception as exc:
        log.warning("prompt texts unavailable (%s): showing prompt keys", exc)

    def describe(line: str, lang: str, ref: PromptRef) -> str:
        if voice is not None:
            try:
                return str(voice.text(line, lang, ref))
            except Exception as exc:
                log.warning("no text for %s/%s/%s: %s", line, lang, ref.key, exc)
        values = ", ".join(f"{k}={v}" for k, v in ref.values.items())
        return f"<{ref.key}{' ' + values if values else ''}>"

    return describe
