"""The service-number table (`prompts/numbers/service_numbers.yaml`): the server's own word on which
line a dialled number reaches, whether its caller ID is trusted, whether the call is roaming, and each
line's step-up policy.

`ServiceNumbers.resolve(call)` turns the `CallStarted` a driver built from the dialplan's request into
the one the engine sees:
- the DID must be in the table, else `UnknownServiceNumber` (a LookupError: the drivers send the caller
  to the failure path, apology + operator);
- the line is the table's (a dialplan that names another is logged and overruled);
- `caller_id` becomes the normalised number (`ivr.numbering.phone`), or None when withheld/garbage;
- `caller_id_trusted` = the table's trust AND the dialplan's flag AND a readable Russian caller ID: the
  dialplan may take trust away, never grant it (a trust=yes for an untrusted number is logged);
- `roaming` is the table's;
- `step_up_required` follows the line's policy; `caller_bucket` is the throttling key of the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ivr.engine.events import CallStarted
from ivr.numbering.phone import parse_caller_id, service_number_key

log = logging.getLogger(__name__)

STEP_UP_POLICIES = ("untrusted", "always", "never")
FILE_NAME = "numbers/service_numbers.yaml"


class UnknownServiceNumber(LookupError):
    """The number dialled is not one of ours."""


class LinesFileError(ValueError):
    """prompts/numbers/service_numbers.yaml is missing or wrong."""


@dataclass(frozen=True)
class ServiceNumber:
    number: str
    line: str
    trust: bool
    roaming: bool = False


@dataclass(frozen=True)
class LinePolicy:
    step_up: str = "untrusted"


@dataclass
class ServiceNumbers:
    numbers: dict[str, ServiceNumber] = field(default_factory=dict)  # by service_number_key
    policies: dict[str, LinePolicy] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ServiceNumbers:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise LinesFileError(f"{path}: {exc}") from exc
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = FILE_NAME) -> ServiceNumbers:
        if not isinstance(data, dict):
            raise LinesFileError(f"{where}: expected a mapping with 'lines' and 'numbers'")
        policies: dict[str, LinePolicy] = {}
        for line, spec in (data.get("lines") or {}).items():
            step_up = str((spec or {}).get("step_up", "untrusted"))
            if step_up not in STEP_UP_POLICIES:
                raise LinesFileError(f"{where}: line {line}: step_up must be one of {STEP_UP_POLICIES}")
            policies[str(line)] = LinePolicy(step_up=step_up)
        numbers: dict[str, ServiceNumber] = {}
        for item in data.get("numbers") or []:
            if not isinstance(item, dict) or "number" not in item or "line" not in item:
                raise LinesFileError(f"{where}: each number needs 'number' and 'line': {item!r}")
            trust, roaming = item.get("trust", False), item.get("roaming", False)
            if not isinstance(trust, bool) or not isinstance(roaming, bool):
                raise LinesFileError(f"{where}: {item['number']}: trust and roaming are true or false")
            key = service_number_key(str(item["number"]))
            if key is None:
                raise LinesFileError(f"{where}: {item['number']!r} is not a phone number")
            if key in numbers:
                raise LinesFileError(f"{where}: {item['number']} is listed twice")
            line = str(item["line"])
            if line not in policies:
                raise LinesFileError(f"{where}: {item['number']}: line {line} has no entry under 'lines'")
            numbers[key] = ServiceNumber(str(item["number"]), line, trust, roaming)
        return cls(numbers=numbers, policies=policies)

    def lookup(self, did: object) -> ServiceNumber | None:
        key = service_number_key(did)
        return None if key is None else self.numbers.get(key)

    def resolve(self, call: CallStarted) -> CallStarted:
        entry = self.lookup(call.did)
        if entry is None:
            log.warning("refused: %r is not a service number", str(call.did)[:32])
            raise UnknownServiceNumber(str(call.did)[:32])
        if call.line and call.line != entry.line:
            log.warning(
                "dialplan asked for line %r on %s: the table says %s",
                call.line[:32],
                entry.number,
                entry.line,
            )
        caller = parse_caller_id(call.caller_id)
        asked_trust = bool(call.facts.get("caller_id_trusted"))
        if asked_trust and not entry.trust:
            log.warning("trust=yes ignored: %s does not trust caller ID", entry.number)
        trusted = entry.trust and asked_trust and caller.msisdn is not None
        if entry.trust and asked_trust and caller.msisdn is None:
            log.info("caller ID %s on %s: number + PIN", caller.kind, entry.number)
        if bool(call.facts.get("roaming")) != entry.roaming:
            log.info("roaming flag from the dialplan overruled for %s", entry.number)
        policy = self.policies.get(entry.line, LinePolicy())
        step_up = policy.step_up == "always" or (policy.step_up == "untrusted" and not trusted)
        facts = {
            **call.facts,
            "caller_id_trusted": trusted,
            "roaming": entry.roaming,
            "step_up_required": step_up,
            "caller_bucket": caller.bucket(),
        }
        number = caller.msisdn or (caller.international if caller.present else None)
        return replace(call, line=entry.line, did=entry.number, caller_id=number, facts=facts)


def load_service_numbers(prompts_dir: Path) -> ServiceNumbers:
    return ServiceNumbers.load(Path(prompts_dir) / FILE_NAME)
