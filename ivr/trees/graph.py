"""A tree drawn as a Graphviz graph: `ivr tree graph` and the staff console. Each node's SVG element gets
the id `node-<id>`, so a page can mark nodes (visited on a try call, or holding an error)."""

from __future__ import annotations

import subprocess

from ivr.engine.tree import Tree, successors

SHAPES = {
    "Menu": "box",
    "CollectDigits": "parallelogram",
    "Confirm": "diamond",
    "Action": "component",
    "Transfer": "doubleoctagon",
    "HangUp": "doublecircle",
    "If": "hexagon",
    "Choose": "box3d",
}


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def tree_dot(tree: Tree) -> str:
    out = [
        f'digraph "{_quote(tree.line)}" {{',
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
    ]
    for node in tree.nodes.values():
        kind = type(node).__name__.removesuffix("Node")
        detail = getattr(node, "name", "") or getattr(node, "queue", "") or ""
        label = f"{node.id}\\n{kind}{': ' + _quote(str(detail)) if detail else ''}"
        out.append(
            f'  "{node.id}" [id="node-{node.id}", shape={SHAPES.get(kind, "ellipse")}, label="{label}"];'
        )
        for edge_label, target in successors(node):
            out.append(f'  "{node.id}" -> "{target}" [label="{edge_label.replace(chr(34), "")}"];')
    out.append("}")
    return "\n".join(out) + "\n"


def tree_svg(tree: Tree, *, timeout: float = 20.0) -> str:
    """The tree as SVG (Graphviz `dot`), without the XML prologue, ready to inline in a page."""
    done = subprocess.run(
        ["dot", "-Tsvg"], input=tree_dot(tree).encode(), capture_output=True, check=True, timeout=timeout
    )
    svg = done.stdout.decode("utf-8")
    return svg[svg.index("<svg") :]
