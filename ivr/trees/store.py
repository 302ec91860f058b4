"""`TreeStore`: the trees in service. For every line it keeps the last good *set*: the tree and the texts it
was checked against (and, through the `accept` hook, the rendered audio of those texts), and replaces the
set only as a whole."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivr.engine.actions import ActionCatalog
from ivr.engine.tree import Tree
from ivr.trees.errors import TreeError, TreeInvalid
from ivr.trees.loader import load_line
from ivr.trees.texts import COMMON, RECORDINGS_DIR, TextCatalog, recording_files

log = logging.getLogger(__name__)

PUBLISHING_MARK = ".publishing"


# Further checks of a new set before it serves (the server checks that every prompt has rendered audio of
# its current text): problems as text; any problem refuses the set.
AcceptCheck = Callable[[Tree, TextCatalog], list[str]]


class TreeStore:
    """The last good set (tree + texts) of every line under `prompts_dir`. Thread-safe.

    `reload()` re-reads the lines whose tree or text files changed (the server runs it from a watcher
    thread every few seconds and on SIGHUP, never on a call's path). With `poll_seconds` set, `get(line)`
    also looks when that much time has passed (the simulator and tests). An invalid new set is logged and
    ignored: the old one keeps serving. A call keeps the set it started with (`get_set`: the `Tree` and
    the `TextCatalog` objects), so a reload never changes a call in progress.
    """

    def __init__(
        self,
        prompts_dir: str | Path,
        catalog: ActionCatalog | None = None,
        *,
        poll_seconds: float | None = 2.0,
        clock: Any = None,
        accept: AcceptCheck | None = None,
        also_watch: tuple[Path, ...] = (),
    ) -> None:
        self.dir = Path(prompts_dir)
        self.catalog = catalog
        self.accept = accept
        # Files besides the tree and its texts whose change re-checks every line (the audio manifest: a
        # set refused for stale audio is taken once its prompts are rendered).
        self.also_watch = also_watch
        self.poll_seconds = poll_seconds
        self._clock = clock or time.monotonic
        self._lock = threading.RLock()  # guards the sets in service; held only to read or swap them
        self._reloading = threading.Lock()  # one reload at a time (watcher thread, SIGHUP)
        self._trees: dict[str, Tree] = {}
        self._texts: dict[str, TextCatalog] = {}
        self._signatures: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self.errors: dict[str, list[TreeError]] = {}
        self._last_poll = float("-inf")

    def lines(self) -> list[str]:
        with self._lock:
            return sorted(self._trees)

    def _signature(self, line: str) -> tuple[tuple[str, int, int], ...]:
        """The files of a line's set, each with its mtime and size: the tree, its texts, the common texts,
        the recordings of both (a recording added, replaced or removed changes the set) and `also_watch`."""
        texts = self.dir / "texts"
        recordings = self.dir / RECORDINGS_DIR
        files = [
            self.dir / f"{line}.yaml",
            *sorted(texts.glob(f"{line}.*.yaml")),
            *sorted(texts.glob("common.*.yaml")),
            *recording_files(recordings, line),
            *recording_files(recordings, COMMON),
            *self.also_watch,
        ]
        out = []
        for f in files:
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            out.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def reload(self) -> dict[str, list[TreeError]]:
        """Re-read every changed line; return the errors of lines whose new set was refused. Files are read
        and checked without holding the lock that `get()` takes: a call never waits for a reload."""
        refused: dict[str, list[TreeError]] = {}
        with self._reloading:
            self._last_poll = self._clock()
            if self._publishing():
                return refused  # the staff console is writing a line's files: take them once complete
            for path in sorted(self.dir.glob("*.yaml")):
                line = path.stem
                sig = self._signature(line)
                if self._signatures.get(line) == sig:
                    continue
                self._signatures[line] = sig
                try:
                    tree, texts = load_line(path, self.catalog)
                    problems = self.accept(tree, texts) if self.accept is not None else []
                    if problems:
                        raise TreeInvalid([TreeError(str(path), 1, "audio", p) for p in problems])
                except TreeInvalid as exc:
                    refused[line] = exc.errors
                    with self._lock:
                        self.errors[line] = exc.errors
                        kept = self._trees.get(line)
                    log.warning(
                        "tree %s refused (%d errors, first: %s); %s",
                        path,
                        len(exc.errors),
                        exc.errors[0],
                        f"keeping version {kept.version}" if kept else "line has no good version",
                    )
                    continue
                except OSError as exc:
                    log.warning("tree %s unreadable: %s", path, exc)
                    continue
                with self._lock:
                    old = self._trees.get(line)
                    self._trees[line] = tree
                    self._texts[line] = texts
                    self.errors.pop(line, None)
                log.info(
                    "tree %s version %s loaded%s", line, tree.version, f" (was {old.version})" if old else ""
                )
        return refused

    def _publishing(self) -> bool:
        """The console's mark (ivr/web/files.py) while it writes a set; one older than a minute is stale
        (a console that died mid-write) and ignored."""
        try:
            age = time.time() - (self.dir / PUBLISHING_MARK).stat().st_mtime
        except FileNotFoundError:
            return False
        return age < 60.0

    def get(self, line: str) -> Tree:
        """The current good tree of `line`; KeyError if the line never had a valid tree."""
        return self.get_set(line)[0]

    def get_set(self, line: str) -> tuple[Tree, TextCatalog]:
        """The current good set of `line`, tree and texts taken together (a reload between two separate
        reads could pair a tree with the texts of another version); KeyError if it never had one."""
        if self.poll_seconds is not None and self._clock() - self._last_poll >= self.poll_seconds:
            self.reload()
        with self._lock:
            return self._trees[line], self._texts[line]

    def versions(self) -> dict[str, str]:
        """Each line's tree version in service now (no reload: for a metrics scrape)."""
        with self._lock:
            return {line: str(tree.version) for line, tree in self._trees.items()}

    def texts(self, line: str) -> TextCatalog:
        """The texts of the line's current good set (what its tree was checked against)."""
        with self._lock:
            return self._texts[line]
