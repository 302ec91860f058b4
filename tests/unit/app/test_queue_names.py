"""A tree may name only the queues the dialplan serves (asterisk_conf/queues.conf): `ivr validate` says
which node names another, at its line, and fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ivr.app.actions import catalog
from ivr.app.queues import queue_problems, served_queues
from ivr.config import PROJECT_ROOT
from ivr.trees import load_tree

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "speech_line"


def test_the_served_queues_are_the_sections_of_queues_conf() -> None:
    assert served_queues() == {"operators", "loyalty"}


def test_the_shipped_trees_name_served_queues_only() -> None:
    for path in (PROJECT_ROOT / "prompts").glob("*.yaml"):
        assert queue_problems(load_tree(path, catalog()), served_queues()) == []


def test_an_unknown_queue_is_an_error_at_its_node(tmp_path: Path) -> None:
    folder = tmp_path / "prompts"
    shutil.copytree(FIXTURE, folder)
    tree_file = folder / "kotest.yaml"
    text = tree_file.read_text(encoding="utf-8")
    tree_file.write_text(
        text.replace("  points:\n    transfer: operators", "  points:\n    transfer: sales"), encoding="utf-8"
    )
    lineno = next(
        i for i, row in enumerate(tree_file.read_text().splitlines(), 1) if "transfer: sales" in row
    )
    tree = load_tree(tree_file, catalog())
    ((where, message),) = queue_problems(tree, served_queues())
    assert where == lineno - 1  # the node's own line (`points:`)
    assert "'sales'" in message and "operators" in message
    done = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "validate", "--no-audio", str(tree_file)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 1
    assert f"{tree_file}:{where}: error: queue:" in done.stdout
