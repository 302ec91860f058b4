"""Asterisk's side of a per-call stdio AGI over two pipes, answering from a thread, so that the AGI side
(`make_pyst_agi(stdin, stdout)` + `run_stdio_call`) can run in the test's own process and main thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

# An answer for a command, or None: Asterisk stops answering from then on (it still reads, and keeps
# the pipes open, like a stalled Asterisk).
Answer = Callable[[str], str | None]


class PipeAsterisk:
    """`agi_stdin` / `agi_stdout` are the file descriptors the AGI side reads and writes. The header is in
    the stdin pipe before anything starts; every command line is recorded in `commands`."""

    def __init__(self, header: bytes, answer: Answer) -> None:
        self.agi_stdin, self._to_agi = os.pipe()
        self._from_agi, self.agi_stdout = os.pipe()
        self._open = {self.agi_stdin, self._to_agi, self._from_agi, self.agi_stdout}
        self._lock = threading.Lock()
        self.answer = answer
        self.commands: list[str] = []
        self.stalled = False
        os.write(self._to_agi, header)
        self._thread = threading.Thread(target=self._run, name="fake-asterisk", daemon=True)

    def start(self) -> PipeAsterisk:
        self._thread.start()
        return self

    def _run(self) -> None:
        with open(self._from_agi, "rb", buffering=0, closefd=False) as commands:
            while True:
                raw = commands.readline()
                if not raw:  # the AGI side closed its stdout
                    return
                command = raw.decode().rstrip("\n")
                self.commands.append(command)
                reply = None if self.stalled else self.answer(command)
                if reply is None:
                    self.stalled = True
                    continue
                self.send(reply.encode() + b"\n")

    def send(self, raw: bytes) -> None:
        """Raw bytes to the AGI side's stdin (e.g. half a line); nothing once it is closed."""
        with self._lock:
            if self._to_agi in self._open:
                os.write(self._to_agi, raw)

    def _close(self, fd: int) -> None:
        with self._lock:
            if fd in self._open:
                self._open.discard(fd)
                os.close(fd)

    def hang_up(self) -> None:
        """Close the AGI side's stdin, as Asterisk does when it is gone."""
        self._close(self._to_agi)

    def close(self) -> None:
        """Close the AGI side's stdout (the thread reads end of file and ends), join, close the rest."""
        self._close(self.agi_stdout)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the fake Asterisk thread did not end"
        for fd in (self._from_agi, self._to_agi, self.agi_stdin):
            self._close(fd)
