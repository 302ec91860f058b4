"""The operator queues the dialplan serves (asterisk_conf/queues.conf), and the check that a tree names
no other: a transfer to a queue Asterisk does not know would leave the caller with "no operator can answer
now" for ever. `ivr validate` reports it at the node's line, and the server refuses such a tree (it keeps
the version in service)."""

from __future__ import annotations

import re
from pathlib import Path

from ivr.config import PROJECT_ROOT
from ivr.engine.tree import TransferNode, Tree

QUEUES_CONF = PROJECT_ROOT / "asterisk_conf" / "queues.conf"
_SECTION = re.compile(r"^\[([A-Za-z0-9_-]+)\](\([^)]*\))?", re.MULTILINE)


def served_queues(path: Path = QUEUES_CONF) -> frozenset[str]:
    """Section names of queues.conf that are queues: not [general], not a template `(!)`."""
    text = path.read_text(encoding="utf-8")
    return frozenset(
        name for name, options in _SECTION.findall(text) if name != "general" and options != "(!)"
    )


def queue_problems(tree: Tree, served: frozenset[str]) -> list[tuple[int, str]]:
    """(line number, message) for each queue the tree names that the dialplan does not serve."""
    found: list[tuple[int, str]] = []
    if tree.settings.operator_queue not in served:
        found.append(
            (
                1,
                f"settings.operator_queue {tree.settings.operator_queue!r} is not a queue of "
                + _known(served),
            )
        )
    for node in tree.nodes.values():
        if isinstance(node, TransferNode) and node.queue is not None and node.queue not in served:
            found.append(
                (node.lineno, f"node {node.id} transfers to {node.queue!r}, not a queue of {_known(served)}")
            )
    return found


def _known(served: frozenset[str]) -> str:
    return f"asterisk_conf/queues.conf ({', '.join(sorted(served))})"
