"""Versions of the lines' menus for the staff console: every file of a line by its path under prompts/
(`operator.yaml`, `texts/operator.ru.yaml`, `recordings/operator/ru/greeting.wav` as base64), numbered
per line. Drafts are per editor. Saving a draft as a version is refused when the line has moved past the
version the draft started from (optimistic concurrency): two editors never silently overwrite each other.

Only the database is touched here; writing the published files and rendering them is the console's job
(ivr/web/publish.py)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ivr.db.models import TreeDraft, TreeVersion
from ivr.db.session import UnitOfWork
from ivr.services.staff import audit

Files = dict[str, str]
BINARY_SUFFIXES = (".wav",)  # kept as base64 text; a diff shows only that they changed


class VersionConflict(Exception):
    """The line moved past the draft's base: `latest` was saved by someone else since."""

    def __init__(self, line: str, base: int, latest_number: int, latest_author: str, diff: str) -> None:
        # Plain values: the unit of work that found the conflict rolls back, and its objects expire.
        self.line, self.base, self.diff = line, base, diff
        self.latest_number, self.latest_author = latest_number, latest_author
        super().__init__(
            f"{line}: version {latest_number} was saved by {latest_author} after version {base}, which "
            "this draft started from"
        )


@dataclass(frozen=True)
class VersionInfo:
    number: int
    author: str
    comment: str
    created_at: str
    published: bool
    live: bool


def files_diff(
    old: Mapping[str, str], new: Mapping[str, str], *, old_label: str = "", new_label: str = ""
) -> str:
    """A unified diff of two file sets, file by file (empty when they are the same)."""
    out: list[str] = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        a = f"{old_label}/{path}" if old_label else f"a/{path}"
        b = f"{new_label}/{path}" if new_label else f"b/{path}"
        if path.endswith(BINARY_SUFFIXES):
            what = "added" if before is None else "removed" if after is None else "changed"
            out.append(f"--- {a}\n+++ {b}\n@@ recording {what} @@\n")
            continue
        out.extend(
            difflib.unified_diff(
                (before or "").splitlines(keepends=True),
                (after or "").splitlines(keepends=True),
                fromfile=a if before is not None else "/dev/null",
                tofile=b if after is not None else "/dev/null",
            )
        )
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
    return "".join(out)


def latest(uow: UnitOfWork, line: str) -> TreeVersion | None:
    return uow.session.scalar(
        select(TreeVersion).where(TreeVersion.line == line).order_by(TreeVersion.number.desc()).limit(1)
    )


def live(uow: UnitOfWork, line: str) -> TreeVersion | None:
    """The version callers hear: the one published last."""
    return uow.session.scalar(
        select(TreeVersion)
        .where(TreeVersion.line == line, TreeVersion.published_at.is_not(None))
        .order_by(TreeVersion.published_at.desc(), TreeVersion.number.desc())
        .limit(1)
    )


def live_numbers(uow: UnitOfWork) -> dict[str, int]:
    """Every line's live version number, in one query that reads no files. The live version is the one
    published last, ordered exactly as `live` orders it."""
    rank = (
        func.row_number()
        .over(
            partition_by=TreeVersion.line,
            order_by=(TreeVersion.published_at.desc(), TreeVersion.number.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(TreeVersion.line, TreeVersion.number, rank)
        .where(TreeVersion.published_at.is_not(None))
        .subquery()
    )
    rows = uow.session.execute(select(ranked.c.line, ranked.c.number).where(ranked.c.rank == 1))
    return {line: number for line, number in rows}


def get(uow: UnitOfWork, line: str, number: int) -> TreeVersion | None:
    return uow.session.scalar(
        select(TreeVersion).where(TreeVersion.line == line, TreeVersion.number == number)
    )


def history(uow: UnitOfWork, line: str) -> list[TreeVersion]:
    return list(
        uow.session.scalars(
            select(TreeVersion).where(TreeVersion.line == line).order_by(TreeVersion.number.desc())
        )
    )


def lines(uow: UnitOfWork) -> list[str]:
    return list(uow.session.scalars(select(TreeVersion.line).distinct().order_by(TreeVersion.line)))


def _new_version(
    uow: UnitOfWork,
    line: str,
    files: Mapping[str, str],
    author: str,
    comment: str,
    base: int | None,
    top: TreeVersion | None,
) -> TreeVersion:
    """Version `top + 1`. `top` is the latest version as the caller checked it (read once: on PostgreSQL a
    second read could see a racing save's version and quietly number past it)."""
    version = TreeVersion(
        line=line,
        number=(top.number if top else 0) + 1,
        base=base,
        files=dict(files),
        author=author,
        comment=comment[:200],
        created_at=uow.now(),
        published_by="",
    )
    number = version.number
    uow.session.add(version)
    try:
        uow.session.flush()  # the (line, number) key: a racing save on PostgreSQL fails here
    except IntegrityError as exc:
        uow.rollback()
        raise VersionConflict(
            line, base or 0, number, "another editor", "another version was saved at the same moment"
        ) from exc
    return version


def import_files(
    uow: UnitOfWork, line: str, files: Mapping[str, str], *, author: str = "files"
) -> TreeVersion | None:
    """The files under prompts/ as a published version when they differ from the live one: the seed of
    version 1, and edits made with a text editor and `ivr validate` next to the console. None when equal."""
    current = live(uow, line)
    if current is not None and current.files == dict(files):
        return None
    version = _new_version(
        uow,
        line,
        files,
        author,
        "the files under prompts/" if current is None else "changed in the files under prompts/",
        current.number if current else None,
        latest(uow, line),
    )
    version.published_at = uow.now()
    version.published_by = author
    audit(
        uow,
        author,
        "import",
        line=line,
        version=version.number,
        detail=files_diff(current.files if current else {}, files),
    )
    return version


def draft(uow: UnitOfWork, line: str, author: str) -> TreeDraft | None:
    return uow.session.scalar(select(TreeDraft).where(TreeDraft.line == line, TreeDraft.author == author))


def open_draft(uow: UnitOfWork, line: str, author: str) -> TreeDraft:
    """The editor's draft of the line, started from the latest version when there is none."""
    found = draft(uow, line, author)
    if found is not None:
        return found
    top = latest(uow, line)
    if top is None:
        raise LookupError(f"line {line} has no version")
    found = TreeDraft(line=line, author=author, base=top.number, files=dict(top.files), updated_at=uow.now())
    uow.session.add(found)
    uow.session.flush()
    return found


def update_draft(uow: UnitOfWork, line: str, author: str, files: Mapping[str, str]) -> TreeDraft:
    found = open_draft(uow, line, author)
    found.files = dict(files)
    found.updated_at = uow.now()
    return found


def discard_draft(uow: UnitOfWork, line: str, author: str) -> None:
    found = draft(uow, line, author)
    if found is not None:
        uow.session.delete(found)


def save_version(uow: UnitOfWork, line: str, author: str, comment: str = "") -> TreeVersion:
    """The editor's draft as the next version. Refused (VersionConflict, with the other edit's diff) when a
    version was saved after the draft's base. Run in a write unit: SQLite serialises it, and on PostgreSQL
    the (line, number) key refuses the second of two racing saves."""
    found = draft(uow, line, author)
    if found is None:
        raise LookupError(f"{author} has no draft of {line}")
    top = latest(uow, line)
    if top is not None and top.number != found.base:
        base = get(uow, line, found.base)
        raise VersionConflict(
            line,
            found.base,
            top.number,
            top.author,
            files_diff(
                base.files if base else {}, top.files, old_label=f"v{found.base}", new_label=f"v{top.number}"
            ),
        )
    before = top.files if top else {}
    if top is not None and dict(found.files) == top.files:
        raise ValueError("the draft is the same as the latest version: nothing to save")
    version = _new_version(uow, line, found.files, author, comment, found.base, top)
    found.base = version.number
    audit(uow, author, "save", line=line, version=version.number, detail=files_diff(before, version.files))
    return version


def mark_published(
    uow: UnitOfWork, line: str, number: int, by: str, *, action: str = "publish"
) -> TreeVersion:
    version = get(uow, line, number)
    if version is None:
        raise LookupError(f"{line} has no version {number}")
    was = live(uow, line)
    version.published_at = uow.now()
    version.published_by = by
    audit(
        uow,
        by,
        action,
        line=line,
        version=number,
        detail=files_diff(
            was.files if was else {},
            version.files,
            old_label=f"v{was.number if was else 0}",
            new_label=f"v{number}",
        ),
    )
    return version


def rollback_version(uow: UnitOfWork, line: str, number: int, by: str) -> TreeVersion:
    """A new version with the files of version `number` (history stays a straight line); the caller then
    publishes it."""
    old = get(uow, line, number)
    if old is None:
        raise LookupError(f"{line} has no version {number}")
    top = latest(uow, line)
    return _new_version(
        uow, line, old.files, by, f"rollback to version {number}", top.number if top else None, top
    )
