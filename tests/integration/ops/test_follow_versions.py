"""Nodes of a cluster follow the published versions (ivr.cluster.follow, docs/scale-out.md): two nodes,
each with prompts/ and sounds of its own, over ONE database (SQLite and a real PostgreSQL). A version the
console publishes reaches both nodes' files, rendered, and the server's own store takes it; a version that
fails the check is not written, the log names it once, and a later good version is taken; a node whose
files already hold the live version writes nothing.

Rendering is kept cheap: the line's audio is rendered once per module into a template every node copies,
so a version that changes one text renders that one prompt."""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[2]))  # tests/, for dbfixtures

from dbfixtures import *  # noqa: F403  (db_kind, db_url, pg_cluster)

from ivr.app.actions import catalog
from ivr.app.bootstrap import audio_check
from ivr.cluster.follow import VersionFollower
from ivr.config import PROJECT_ROOT, Settings
from ivr.db.session import UowFactory, make_uow_factory
from ivr.prompts.render import render
from ivr.services import tree_versions as versions
from ivr.trees.store import TreeStore
from ivr.web.files import read_line
from ivr.web.publish import publish_version
from ivr.web.texts_edit import set_text, texts_of

LINE = "operator"
TREE = f"{LINE}.yaml"
TEXTS = f"texts/{LINE}.ru.yaml"
FOLLOW_LOG = "ivr.cluster.follow"

pytestmark = pytest.mark.slow  # the line's audio is rendered once for the module (about 20 s)


def node_settings(root: Path, db_url: str, sounds_template: Path) -> Settings:
    """A node: a copy of the project's prompts/ and of the rendered audio, the shared database."""
    shutil.copytree(PROJECT_ROOT / "prompts", root / "prompts")
    shutil.copytree(sounds_template, root / "sounds")
    return Settings(
        home=PROJECT_ROOT,
        var_dir=root / "var",
        database_url=db_url,
        prompts_dir=root / "prompts",
        sounds_dir=root / "sounds",
        tts_engine="espeak",
    )


@pytest.fixture(scope="module")
def sounds_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The line's audio as the project's files have it, rendered once for every node of the module."""
    root = tmp_path_factory.mktemp("follow-sounds")
    settings = Settings(
        home=PROJECT_ROOT,
        var_dir=root / "var",
        database_url=f"sqlite:///{root / 'unused.sqlite3'}",
        prompts_dir=PROJECT_ROOT / "prompts",
        sounds_dir=root / "sounds",
        tts_engine="espeak",
    )
    # The line's prompts, the common ones and the words that say values: what the server checks for.
    report = render(settings, LINE, progress=False, prune=False)
    assert not report.failed, report.failed[:3]
    return root / "sounds"


@dataclass
class Cluster:
    database: UowFactory
    console: Settings
    nodes: list[Settings]
    followers: list[VersionFollower]


@pytest.fixture
def cluster(db_url: str, tmp_path: Path, sounds_template: Path) -> Cluster:
    database = make_uow_factory(db_url)
    console = node_settings(tmp_path / "console", db_url, sounds_template)
    nodes = [node_settings(tmp_path / name, db_url, sounds_template) for name in ("node1", "node2")]
    # Version 1: the project's files, as the console seeds it.
    with database(write=True) as uow:
        assert versions.import_files(uow, LINE, read_line(console.prompts, LINE)) is not None
        uow.commit()
    followers = [VersionFollower(node, database) for node in nodes]
    yield Cluster(database, console, nodes, followers)  # type: ignore[misc]
    database.dispose()


def edited(files: dict[str, str], tree_version: str, key: str, text: str) -> dict[str, str]:
    """The files with the tree's `version:` and one Russian text changed."""
    out = dict(files)
    assert 'version: "2026.12.1"' in out[TREE]
    out[TREE] = out[TREE].replace('version: "2026.12.1"', f'version: "{tree_version}"', 1)
    out[TEXTS] = set_text(out[TEXTS], key, text)
    return out


def save_as_version(database: UowFactory, files: dict[str, str], *, published: bool) -> int:
    """A new version of the line with `files`, saved by an editor; published here when asked (the way a
    console on another machine leaves it in the database)."""
    with database(write=True) as uow:
        versions.update_draft(uow, LINE, "editor", files)
        number = versions.save_version(uow, LINE, "editor", "test").number
        if published:
            versions.mark_published(uow, LINE, number, "publisher")
        uow.commit()
    return number


def mtimes(prompts: Path) -> dict[str, int]:
    return {rel: (prompts / rel).stat().st_mtime_ns for rel in read_line(prompts, LINE)}


def served_version(node: Settings) -> tuple[str, str]:
    """The tree version and the `cancelled` text the server's own store serves from the node's files (with
    its check that every prompt has audio rendered from its current text)."""
    store = TreeStore(node.prompts, catalog(), poll_seconds=None, accept=audio_check(node))
    refused = store.reload()
    assert LINE not in refused, refused.get(LINE, [])[:3]
    tree, texts = store.get_set(LINE)
    entry = texts.get("ru", "cancelled")
    assert entry is not None
    return tree.version, entry.text


def test_a_published_version_reaches_every_node(cluster: Cluster) -> None:
    # The nodes' files already are version 1: nothing is written.
    before = [mtimes(node.prompts) for node in cluster.nodes]
    for follower in cluster.followers:
        assert follower.apply_once() == {}
        assert follower.applied == {LINE: 1}
    assert [mtimes(node.prompts) for node in cluster.nodes] == before

    # The console publishes version 2 (its own prompts/ and sounds).
    with cluster.database() as uow:
        live = dict(versions.live(uow, LINE).files)  # type: ignore[union-attr]
    new_files = edited(live, "follow-2", "cancelled", "Хорошо, отменили.")
    number = save_as_version(cluster.database, new_files, published=False)
    publish_version(cluster.console, cluster.database, LINE, number, "publisher")
    assert read_line(cluster.console.prompts, LINE) == new_files

    for node, follower in zip(cluster.nodes, cluster.followers, strict=True):
        assert served_version(node) == ("2026.12.1", texts_of(live[TEXTS])["cancelled"])
        assert follower.apply_once() == {LINE: number}
        assert read_line(node.prompts, LINE) == new_files
        assert served_version(node) == ("follow-2", "Хорошо, отменили.")
        assert follower.apply_once() == {}  # the next poll finds nothing new


def test_a_version_that_fails_the_check_is_not_written_and_a_later_one_is(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    node, follower = cluster.nodes[0], cluster.followers[0]
    assert follower.apply_once() == {}
    with cluster.database() as uow:
        good = dict(versions.live(uow, LINE).files)  # type: ignore[union-attr]

    broken = edited(good, "broken-2", "cancelled", "Отменили.")
    assert "goto: after_auth" in broken[TREE]
    broken[TREE] = broken[TREE].replace("goto: after_auth", "goto: nowhere", 1)
    bad_number = save_as_version(cluster.database, broken, published=True)
    files_before, mtimes_before = read_line(node.prompts, LINE), mtimes(node.prompts)

    with caplog.at_level(logging.INFO, logger=FOLLOW_LOG):
        assert follower.apply_once() == {}
        assert follower.apply_once() == {}  # the same failing version: not tried again, not logged again
    errors = [r for r in caplog.records if r.name == FOLLOW_LOG and r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert f"version {bad_number} of {LINE}" in message and "nowhere" in message
    assert read_line(node.prompts, LINE) == files_before and mtimes(node.prompts) == mtimes_before
    assert served_version(node)[0] == "2026.12.1"

    fixed = edited(good, "fixed-3", "cancelled", "Отменили, как вы просили.")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=FOLLOW_LOG):
        good_number = save_as_version(cluster.database, fixed, published=True)
        assert follower.apply_once() == {LINE: good_number}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert read_line(node.prompts, LINE) == fixed
    assert served_version(node) == ("fixed-3", "Отменили, как вы просили.")
    # The other node never saw the broken version live: it goes straight to the good one.
    assert cluster.followers[1].apply_once() == {LINE: good_number}
    assert served_version(cluster.nodes[1])[0] == "fixed-3"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stderr_lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """The process's stderr, line by line, read in a thread (so a wait for a line can give up); "" at its
    end."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put("")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def wait_for(lines: queue.Queue[str], pattern: str, seen: list[str], *, patience: float = 90.0) -> str:
    """The first line matching `pattern` (the lines read go to `seen`); fails when the process ends or
    `patience` seconds pass first (a limit to give up at, not a measure)."""
    give_up = time.monotonic() + patience
    while True:
        try:
            line = lines.get(timeout=max(0.0, give_up - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line matching {pattern!r}; seen:\n{''.join(seen[-30:])}") from None
        seen.append(line)
        if line == "":
            raise AssertionError(f"the process ended before {pattern!r}:\n{''.join(seen[-30:])}")
        if re.search(pattern, line):
            return line


@pytest.mark.timeout(240)
def test_ivr_serve_starts_on_the_live_version_and_follows_the_next(cluster: Cluster, db_url: str) -> None:
    node = cluster.nodes[0]
    with cluster.database() as uow:
        good = dict(versions.live(uow, LINE).files)  # type: ignore[union-attr]
    # Published while the node was down: the node must start on it.
    second = edited(good, "while-down-2", "cancelled", "Отменено, пока узел спал.")
    save_as_version(cluster.database, second, published=True)
    env = dict(os.environ)
    env.update(
        {
            "IVR_VAR_DIR": str(node.var),
            "IVR_DATABASE_URL": db_url,
            "IVR_PROMPTS_DIR": str(node.prompts),
            "IVR_SOUNDS_DIR": str(node.sounds),
            "IVR_TTS_ENGINE": "espeak",
            "IVR_AMI_SECRET": "unused",
            "IVR_MEDIA": "off",
            "IVR_METRICS_PORT": "0",
            "IVR_NODE_NAME": "node1",
            "IVR_FOLLOW_VERSIONS": "true",
            "IVR_FOLLOW_SECONDS": "0.2",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "serve", "--port", str(free_port()), "--grace", "1"],
        env=env,
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    lines, reader = stderr_lines(proc)
    try:
        wait_for(lines, r"FastAGI on 127\.0\.0\.1:\d+", seen)
        # Before the port opened: the follower said so, wrote version 2, and the trees loaded it.
        started = "".join(seen)
        assert "node node1 follows the versions in the database every 0.2 s" in started
        assert f"tree {LINE} version while-down-2 loaded" in started
        assert f"tree {LINE} version 2026.12.1" not in started  # the old files never served
        assert read_line(node.prompts, LINE) == second

        third = edited(good, "live-3", "cancelled", "Отменено на лету.")
        save_as_version(cluster.database, third, published=True)
        wait_for(lines, rf"tree {LINE} version live-3 loaded \(was while-down-2\)", seen)
        assert read_line(node.prompts, LINE) == third
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == 0, "".join(seen[-30:])
