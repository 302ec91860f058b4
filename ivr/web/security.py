"""The console's guards: who is logged in (a signed session cookie, re-checked against the account on
every request), CSRF tokens on every change, session expiry, and throttling of failed logins by address
on top of the per-account lock (ivr/services/staff.py)."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable

from starlette.requests import Request

from ivr.services.staff import Staff

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
ADDRESS_FAILURES = 10  # failed logins from one address ...
ADDRESS_WINDOW = 600.0  # ... within this many seconds: that address waits


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(message)


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf(request: Request, sent: str | None) -> None:
    expected = request.session.get(CSRF_FIELD)
    if not expected or not sent or not hmac.compare_digest(str(expected), str(sent)):
        raise Refused(403, "the form is stale or did not come from the console (CSRF token missing or wrong)")


class LoginThrottle:
    """Failed logins per client address in a sliding window, in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        times = self.failures.setdefault(address, deque())
        cutoff = self.clock() - ADDRESS_WINDOW
        while times and times[0] < cutoff:
            times.popleft()
        return times

    def allowed(self, address: str) -> bool:
        return len(self._recent(address)) < ADDRESS_FAILURES

    def failed(self, address: str) -> None:
        self._recent(address).append(self.clock())
        if len(self.failures) > 10_000:  # never grows without bound
            for key in [k for k, v in self.failures.items() if not v][:5_000]:
                del self.failures[key]

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)


def start_session(request: Request, staff: Staff) -> None:
    request.session.clear()  # a new session id and a new CSRF token at login: no fixation
    now = time.time()
    request.session.update(
        {"user": staff.username, "issued": now, "seen": now, CSRF_FIELD: secrets.token_urlsafe(32)}
    )


def session_user(request: Request, idle_seconds: float, max_seconds: float) -> str | None:
    """The user name of a live session; an expired one is cleared."""
    user = request.session.get("user")
    if not user:
        return None
    now = time.time()
    issued = float(request.session.get("issued", 0))
    seen = float(request.session.get("seen", 0))
    if now - seen > idle_seconds or now - issued > max_seconds:
        request.session.clear()
        return None
    request.session["seen"] = now
    return str(user)
