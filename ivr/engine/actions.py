"""What the engine and the tree validator know about actions: names, result statuses, whether they
change something. The implementations live in `ivr.app.actions` (they need services and the database),
which builds an `ActionCatalog` from its registry for validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ActionInfo:
    name: str
    statuses: frozenset[str]  # every status the action can return; a tree must branch on each
    changes_state: bool  # True: the tree must confirm before invoking it
    args: frozenset[str] = frozenset()  # argument names it accepts
    # Names of the result values (call variables it sets). Empty: not declared, and the validator then
    # cannot check prompt placeholders that only this action could fill.
    values: frozenset[str] = frozenset()


ActionCatalog = Mapping[str, ActionInfo]
