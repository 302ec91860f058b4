"""Logging: one format, the call's unique id on every record, nothing secret.

The call id travels in a context variable, so every log line written while serving a call carries it,
whichever module writes it. Secrets are kept out by construction (drivers never log collected digits of a
`secret` collect); `SecretScrubber` is a second net that masks long digit runs in every message.
"""

from __future__ import annotations

import contextvars
import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ivr.config import Settings

call_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("ivr_call_id", default="-")


class CallIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = call_id_var.get()
        return True


class SecretScrubber(logging.Filter):
    """Masks card-number-length digit runs (12+ digits) in the final message. Phone numbers (11 digits)
    are not secret and stay readable for support staff."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            return True
        masked = re.sub(r"(?<!\d)\d{12,}(?!\d)", lambda m: m.group(0)[:4] + "…" + m.group(0)[-2:], message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


FORMAT = "%(asctime)s %(levelname)s [%(call_id)s] %(name)s: %(message)s"


class ThrottledLog:
    """Warnings that a flood could repeat (refused connections, bad headers): at most one record per kind
    every `interval` seconds, and the next one says how many were held back. 1,000 idle sockets once wrote
    7,543 identical lines in a minute."""

    def __init__(
        self, logger: logging.Logger, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger, self.interval, self.clock = logger, interval, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, msg: str, *args: object) -> bool:
        """Log unless one of this kind was logged less than `interval` ago; True when it was logged."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        if held:
            msg += " (and %d more like it in the last %.0f s)"
            args = (*args, held, now - (last or now))
        self.logger.warning(msg, *args)
        return True


def setup_logging(settings: Settings, *, to_stderr: bool = True, filename: str | None = None) -> None:
    root = logging.getLogger()
    root.setLevel(getattr(logging, str(settings.log_level).upper(), logging.INFO))
    for handler in list(root.handlers):
        if getattr(handler, "_ivr", False):
            root.removeHandler(handler)
    handlers: list[logging.Handler] = []
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    if filename:
        settings.logs.mkdir(parents=True, exist_ok=True)
        # Watched: reopened when logrotate moves the file (scripts/systemd/ivr.logrotate).
        handlers.append(logging.handlers.WatchedFileHandler(settings.logs / filename, encoding="utf-8"))
    for handler in handlers:
        handler._ivr = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(CallIdFilter())
        handler.addFilter(SecretScrubber())
        root.addHandler(handler)
