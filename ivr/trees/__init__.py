"""The menu language: what support staff write. Tree files (`prompts/<line>.yaml`) and their prompt texts
(`prompts/texts/`), read with line numbers (`yamlfile`), checked for structure (`schema`, a JSON Schema) and
meaning (`checks`), built into the engine's `Tree` (`loader`), and kept in service (`store`).

Imports only `ivr.engine` (the model it builds) and the pure `ivr.numbering`."""

from ivr.trees.errors import TreeError, TreeInvalid
from ivr.trees.loader import load_tree
from ivr.trees.store import TreeStore

__all__ = ["TreeError", "TreeInvalid", "TreeStore", "load_tree"]
