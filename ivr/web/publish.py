"""Putting a version in service: check it as the server will, render its prompts (new texts get new files;
the files callers hear now are not touched), then write the line's files under prompts/ as one set. The
running `ivr serve` takes the new set from its watcher within seconds; a call in progress keeps the tree,
texts and audio it started with.

`install_version` is those steps, the same on every machine: the console runs them when it publishes
(`publish_version`, which also marks the version published in the database, in the transaction around
the write), and every node of a cluster runs them when it finds a newer live version in the database
(ivr/cluster/follow.py)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager

from ivr.config import Settings
from ivr.db.session import UowFactory
from ivr.prompts.render import RenderReport, prune_prompts
from ivr.services import tree_versions as versions
from ivr.web.audio import render_prompts
from ivr.web.checks import Problem, check_line
from ivr.web.files import write_line

log = logging.getLogger(__name__)


class PublishError(Exception):
    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)


def install_version(
    settings: Settings,
    line: str,
    number: int,
    files: Mapping[str, str],
    *,
    around_write: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
) -> RenderReport:
    """Check version `number` of `line` (its `files`), render its prompts into settings.sounds and write the
    files under settings.prompts. PublishError, with nothing written, when the check finds errors or a
    prompt does not render. `around_write`: a context the write runs in (the console's transaction that
    marks the version published; leaving it with an error keeps the version unpublished)."""
    problems = check_line(settings.prompts, line, files)
    if problems:
        raise PublishError(f"version {number} of {line} has {len(problems)} error(s)", problems)
    report = render_prompts(settings, line, files, publishing=True)
    if report.failed:
        raise PublishError(
            f"{len(report.failed)} prompt(s) of version {number} of {line} could not be rendered "
            f"(first: {report.failed[0][0]})"
        )
    with around_write():
        write_line(settings.prompts, line, files)
    # Audio no set uses any more goes after its grace period (calls on an old version still find theirs).
    try:
        prune_prompts(settings)
    except OSError as exc:
        log.warning("pruning old prompt audio failed: %s", exc)
    return report


def publish_version(
    settings: Settings, uow: UowFactory, line: str, number: int, by: str, *, action: str = "publish"
) -> None:
    with uow() as read:
        version = versions.get(read, line, number)
        if version is None:
            raise PublishError(f"{line} has no version {number}")
        files = dict(version.files)

    @contextlib.contextmanager
    def marked_published() -> Iterator[None]:
        with uow(write=True) as write:
            versions.mark_published(write, line, number, by, action=action)
            yield
            write.commit()

    report = install_version(settings, line, number, files, around_write=marked_published)
    log.info(
        "console: %s published version %d of %s (%d prompts rendered)", by, number, line, report.rendered
    )
