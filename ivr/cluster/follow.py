"""Following the published versions: every `follow_seconds` a node asks the database for each line's live
version (one query, numbers only) and, when one differs from what it last put in service, takes that
version's files and runs the console's own steps on them (ivr.web.publish.install_version: check, render,
write), minus marking it published, which the console that published it has done. The server's TreeStore
then takes the new set from the files, as on one machine.

What a node does not take stays out of service, and the node keeps the files it has: a version that fails
the check or whose prompts do not render is logged once (line and number) and not tried again, while any
later version is; a database that cannot be reached is logged once per outage."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from sqlalchemy.exc import SQLAlchemyError

from ivr.config import Settings
from ivr.db.session import UowFactory
from ivr.services import tree_versions as versions
from ivr.web.files import read_line
from ivr.web.publish import PublishError, install_version

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 30.0  # at shutdown, how long a version being rendered and written may take to finish


def _database_failure(exc: BaseException) -> str:
    """What went wrong, for the log: the driver's first line (no statement, no parameters; the URL's
    password is never part of it)."""
    origin = getattr(exc, "orig", None) or exc
    text = str(origin).strip().splitlines()
    return f"{type(origin).__name__}: {text[0]}" if text else type(origin).__name__


class VersionFollower:
    """Keeps the files under settings.prompts at the live versions in the database.

    `apply_once()` is one poll (`ivr serve` runs it before its trees load, so a fresh node serves the live
    versions from its first call); `start()` polls every settings.follow_seconds in a daemon thread,
    `stop()` ends it. `applied`: line -> the live version number this node's files are known to hold.
    """

    def __init__(self, settings: Settings, uow_factory: UowFactory) -> None:
        self.settings = settings
        self.uow_factory = uow_factory
        self.applied: dict[str, int] = {}
        self._refused: dict[str, int] = {}  # line -> the version not taken (logged once, not retried)
        self._database_down = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- one poll -------------------------------------------------------------------------------------

    def apply_once(self) -> dict[str, int]:
        """Put every line's live version in service where this node has other files. Returns the lines
        whose files were written, with the version number."""
        try:
            with self.uow_factory() as uow:
                live = versions.live_numbers(uow)
        except SQLAlchemyError as exc:
            self._lost_database(exc)
            return {}
        self._reached_database()
        written: dict[str, int] = {}
        for line, number in sorted(live.items()):
            if self.applied.get(line) == number or self._refused.get(line) == number:
                continue
            try:
                files = self._files_of(line, number)
            except SQLAlchemyError as exc:
                self._lost_database(exc)
                break
            if files is not None and self._take(line, number, files):
                written[line] = number
        return written

    def _files_of(self, line: str, number: int) -> dict[str, str] | None:
        with self.uow_factory() as uow:
            version = versions.get(uow, line, number)
            return dict(version.files) if version is not None else None

    def _take(self, line: str, number: int, files: Mapping[str, str]) -> bool:
        """Version `number` of `line` in service on this node; True when its files were written."""
        if self._files_now(line) == files:
            self.applied[line] = number
            self._refused.pop(line, None)
            log.info("follow: line %s is at version %d already", line, number)
            return False
        try:
            report = install_version(self.settings, line, number, files)
        except PublishError as exc:
            first = f" (first: {exc.problems[0]})" if exc.problems else ""
            self._refuse(line, number, f"{exc}{first}")
            return False
        except Exception as exc:  # a disk that is full, a voice that crashed: the node keeps serving
            self._refuse(line, number, f"{type(exc).__name__}: {exc}", trace=True)
            return False
        self.applied[line] = number
        self._refused.pop(line, None)
        log.info(
            "follow: version %d of %s written under %s (%d prompts rendered)",
            number,
            line,
            self.settings.prompts,
            report.rendered,
        )
        return True

    def _files_now(self, line: str) -> dict[str, str]:
        try:
            return read_line(self.settings.prompts, line)
        except OSError:  # a line this node does not have yet
            return {}

    def _refuse(self, line: str, number: int, why: str, *, trace: bool = False) -> None:
        self._refused[line] = number
        kept = self.applied.get(line)
        log.error(
            "follow: version %d of %s not put in service: %s; %s",
            number,
            line,
            why,
            f"version {kept} keeps serving" if kept is not None else "the files in service stay",
            exc_info=trace,
        )

    def _lost_database(self, exc: BaseException) -> None:
        if not self._database_down:
            log.error(
                "follow: cannot read the versions in the database (%s); the files in service stay",
                _database_failure(exc),
            )
        self._database_down = True

    def _reached_database(self) -> None:
        if self._database_down:
            log.info("follow: the database answers again")
        self._database_down = False

    # ---- the thread -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="version-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_WAIT_SECONDS) -> None:
        """End the polling; waits for a version being put in service (each file is written atomically, so
        one left unfinished leaves whole files, and the next start takes the live version again)."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warning("follow: still putting a version in service after %.0f s; not waited for", timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.wait(self.settings.follow_seconds):
            try:
                self.apply_once()
            except Exception:  # never let the thread die: the next poll tries again
                log.exception("follow: poll failed; the files in service stay")
