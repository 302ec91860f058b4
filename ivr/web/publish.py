"""Publishing a version: check it as the server will, render its prompts (new texts get new files; the
files callers hear now are not touched), then write the line's files under prompts/ as one set. The
running `ivr serve` takes the new set from its watcher within seconds; a call in progress keeps the tree,
texts and audio it started with."""

from __future__ import annotations

import logging

from ivr.config import Settings
from ivr.db.session import UowFactory
from ivr.prompts.render import prune_prompts
from ivr.services import tree_versions as versions
from ivr.web.audio import render_prompts
from ivr.web.checks import Problem, check_line
from ivr.web.files import write_line

log = logging.getLogger(__name__)


class PublishError(Exception):
    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)


def publish_version(
    settings: Settings, uow: UowFactory, line: str, number: int, by: str, *, action: str = "publish"
) -> None:
    with uow() as read:
        version = versions.get(read, line, number)
        if version is None:
            raise PublishError(f"{line} has no version {number}")
        files = dict(version.files)
    problems = check_line(settings.prompts, line, files)
    if problems:
        raise PublishError(
            f"version {number} of {line} has {len(problems)} error(s): not published", problems
        )
    report = render_prompts(settings, line, files, publishing=True)
    if report.failed:
        raise PublishError(
            f"{len(report.failed)} prompt(s) could not be rendered (first: {report.failed[0][0]}): "
            "not published"
        )
    with uow(write=True) as write:
        versions.mark_published(write, line, number, by, action=action)
        write_line(settings.prompts, line, files)
        write.commit()
    log.info(
        "console: %s published version %d of %s (%d prompts rendered)", by, number, line, report.rendered
    )
    # Audio no set uses any more goes after its grace period (calls on an old version still find theirs).
    try:
        prune_prompts(settings)
    except OSError as exc:
        log.warning("console: pruning old prompt audio failed: %s", exc)
