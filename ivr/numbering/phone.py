"""Telephone numbers as callers, trunks and keypads send them: the one place they are normalised.

Every number that enters the system goes through here: the caller ID Asterisk reports (`agi_callerid`,
which a trunk may fill with `"Name" <sip:+7916...@host>`, `tel:` URIs, `8 (916) ...`, `00 7 ...`,
`810 7 ...`, "anonymous", "unknown" or nothing), the numbers callers key in (a landline caller's own
number, a transfer recipient), and the service number dialled (DID).

Rules:
- A Russian number is stored and compared as 11 digits starting with 7 (`79161234567`). Accepted forms:
  `+7XXXXXXXXXX`, `7XXXXXXXXXX`, `8XXXXXXXXXX` (national trunk prefix), `9XXXXXXXXX` (10 digits, mobile
  without prefix), `007...` and `8107...` (international prefixes), with spaces, dashes, dots and
  parentheses between digits.
- Anything else is not a number we serve: a foreign number, withheld/anonymous, empty, letters, shell or
  SQL metacharacters, more than `MAX_RAW` characters. Such input never raises: it is classified.
- Nothing here logs: a hostile caller ID is never echoed back into a log line by this module.

Pure functions only (no database, no I/O), so the property tests can throw anything at them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RAW = 128  # characters of caller ID we look at; longer is refused, not truncated
MAX_NUMBER_DIGITS = 15  # E.164

# What switches and trunks put in the caller ID when the number is not presented.
WITHHELD_WORDS = frozenset(
    {
        "",
        "anonymous",
        "unknown",
        "restricted",
        "private",
        "withheld",
        "unavailable",
        "blocked",
        "none",
        "null",
        "0",
        "<unknown>",
    }
)

_URI = re.compile(r"<\s*(?:sips?:|tel:)?([^<>@;]*)(?:[@;][^<>]*)?>")
_BARE_URI = re.compile(r"^(?:sips?:|tel:)([^@;]*)(?:[@;].*)?$", re.IGNORECASE)
_NUMBER_TEXT = re.compile(r"^\+?[0-9 ()\-.]+$")
_DIGITS_ONLY = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class CallerId:
    """What a caller ID turned out to be.

    kind: "number" (digits we could read), "withheld" (not presented) or "invalid" (garbage, too long).
    msisdn: the Russian number as 11 digits from 7, when it is one; None for foreign numbers too.
    international: the digits in international form (country code first) when kind is "number".
    """

    kind: str
    msisdn: str | None = None
    international: str | None = None

    @property
    def present(self) -> bool:
        return self.kind == "number"

    def bucket(self) -> str:
        """The throttling key for this caller: the number, or one shared bucket for all withheld and
        one for all unreadable caller IDs (so hiding the number does not give unlimited attempts)."""
        if self.kind == "number" and self.international:
            return self.international
        return self.kind


WITHHELD = CallerId(kind="withheld")
INVALID = CallerId(kind="invalid")


def _user_part(text: str) -> str:
    """The number part of `"Name" <sip:+7916...@host>`, `sip:...@host`, `tel:+7...`, or the text."""
    match = _URI.search(text)
    if match:
        return match.group(1).strip()
    match = _BARE_URI.match(text)
    if match:
        return match.group(1).strip()
    return text


def international_digits(text: str) -> str | None:
    """Digits of a number written with an optional +, separators, and 00/810 international prefixes,
    in international form (country code first, no prefix). Russian national forms (8..., 10 digits from
    9) become 7.... None when the text is not a plain number."""
    if not _NUMBER_TEXT.match(text):
        return None
    plus = text.startswith("+")
    digits = re.sub(r"\D", "", text)
    if not digits or len(digits) > MAX_NUMBER_DIGITS + 3:
        return None
    if plus:
        pass
    elif digits.startswith("810") and len(digits) > 11:
        digits = digits[3:]  # Russian international prefix: 8-10-<country>...
    elif digits.startswith("00") and len(digits) > 4:
        digits = digits[2:]
    elif len(digits) == 11 and digits[0] == "8":
        digits = "7" + digits[1:]
    elif len(digits) == 10 and digits[0] == "9":
        digits = "7" + digits
    if not digits or digits[0] == "0" or len(digits) > MAX_NUMBER_DIGITS:
        return None
    return digits


def parse_caller_id(raw: object) -> CallerId:
    """Classify a caller ID string from Asterisk or a trunk. Never raises."""
    if raw is None:
        return WITHHELD
    text = str(raw)
    if len(text) > MAX_RAW:
        return INVALID
    text = text.strip()
    if text.lower().strip('"') in WITHHELD_WORDS:
        return WITHHELD
    user = _user_part(text)
    if user.lower() in WITHHELD_WORDS:
        return WITHHELD
    digits = international_digits(user)
    if digits is None:
        return INVALID
    msisdn = digits if len(digits) == 11 and digits[0] == "7" else None
    return CallerId(kind="number", msisdn=msisdn, international=digits)


def normalize_msisdn(raw: object) -> str | None:
    """A Russian number as 11 digits starting with 7, from what a caller typed or a caller ID gave:
    "+7 916 123-45-67", "89161234567", "9161234567", "<sip:+79161234567@host>". None when it cannot
    be one (foreign, withheld, garbage)."""
    return parse_caller_id(raw).msisdn


def keyed_digits(raw: object, *, min_len: int = 1, max_len: int = 32) -> str | None:
    """Digits the caller keyed (a PIN, a one-time code): the value itself when it is only ASCII digits
    of an allowed length, else None. Nothing is stripped or repaired: `12 34` or `1234*` is not a PIN."""
    if raw is None:
        return None
    text = str(raw)
    if len(text) > max_len or len(text) < min_len or not _DIGITS_ONLY.match(text):
        return None
    return text


def service_number_key(raw: object) -> str | None:
    """How a dialled service number is compared: short numbers (up to 6 digits) as they are; long ones in
    the international form (`88005500500`, `+78005500500` and `78005500500` are one number). None for
    anything that is not digits with the usual decorations."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text or len(text) > 32:
        return None
    if _DIGITS_ONLY.match(text) and len(text) <= 6:
        return text
    digits = international_digits(text)
    if digits is None:
        return None
    if len(digits) == 11 and digits[0] == "8":  # 8-800 numbers written without the trunk prefix rule
        digits = "7" + digits[1:]
    return digits


def masked_number(raw: object) -> str:
    """A caller's number as records keep it: the international digits with all but the first four and
    the last two hidden ("7916*****67"); short numbers keep only their last two. "" when withheld or not
    a number."""
    caller = parse_caller_id(raw)
    digits = caller.international if caller.kind == "number" else None
    if not digits:
        return ""
    if len(digits) <= 6:
        return "*" * max(0, len(digits) - 2) + digits[-2:]
    return digits[:4] + "*" * (len(digits) - 6) + digits[-2:]
