"""The error every tree check reports: `file:lineno: code: message`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TreeError:
    file: str
    lineno: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.lineno}: {self.code}: {self.message}"


class TreeInvalid(Exception):
    def __init__(self, errors: list[TreeError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file, e.lineno, e.code))
        super().__init__("\n".join(str(e) for e in self.errors))
