"""The structure of a tree file as JSON Schema (draft 2020-12).

`ivr tree schema` prints it; `prompts/tree.schema.json` is the exported copy editors use (a test keeps it
in sync). Meaning (targets, texts, actions, confirmations) is checked by `ivr.trees.checks`.
"""

from __future__ import annotations

import json
from typing import Any

NODE_KINDS = (
    "menu",
    "collect",
    "say",
    "confirm",
    "action",
    "transfer",
    "call",
    "return",
    "language",
    "if",
    "set",
    "choose",
    "hangup",
)

_ID = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}
_KEY = {"type": "string", "pattern": r"^[0-9*#]{1,2}$"}
_CONDITION = {
    "type": "object",
    "description": "var compared by one operator; without an operator: the var is true",
    "properties": {
        "var": {"type": "string"},
        "eq": {},
        "ne": {},
        "lt": {"type": "number"},
        "le": {"type": "number"},
        "gt": {"type": "number"},
        "ge": {"type": "number"},
        "in": {"type": "array"},
        "is": {"enum": [True, False, "true", "false", "set", "unset"]},
    },
    "required": ["var"],
    "additionalProperties": False,
}
_PROMPT = {
    "description": "a text key, or {key, each, limit, values, when}",
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {
                "key": {"type": "string"},
                "each": {"type": "string", "description": "play once per item of this list variable"},
                "limit": {"type": "integer", "minimum": 1},
                "values": {"type": "object", "additionalProperties": {"type": "string"}},
                "when": {"$ref": "#/$defs/condition"},
            },
            "required": ["key"],
            "additionalProperties": False,
        },
    ],
}
_PROMPTS = {"type": "array", "items": {"$ref": "#/$defs/prompt"}}
_HANDLER = {
    "type": "object",
    "properties": {"say": _PROMPTS, "then": {"enum": ["reprompt", "help", "operator", "goodbye"]}},
    "required": ["then"],
    "additionalProperties": False,
}
_RETRIES = {
    "type": "object",
    "properties": {
        "no_input": {"type": "array", "items": _HANDLER, "minItems": 1},
        "no_match": {"type": "array", "items": _HANDLER, "minItems": 1},
    },
    "additionalProperties": False,
}
_BARGE_IN = {
    "type": "boolean",
    "description": "false: the prompts are heard whole (no key or word stops them); default true",
}
_PHRASES = {
    "type": "object",
    "description": "language -> phrases",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


def _node(kind: str, kind_value: Any, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {kind: kind_value, "retries": _RETRIES, "note": {"type": "string"}, **props},
        "required": [kind, *required],
        "additionalProperties": False,
    }


_NODES: dict[str, dict[str, Any]] = {
    "menu": _node(
        "menu",
        _PROMPTS,
        {
            "help": _PROMPTS,
            "barge_in": _BARGE_IN,
            "universal": {
                "description": "universal keys here: true (all), false (none) or a list of names",
                "oneOf": [
                    {"type": "boolean"},
                    {"type": "array", "items": {"enum": ["repeat", "back", "main", "operator"]}},
                ],
            },
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "key": _KEY,
                        "say": _PHRASES,
                        "goto": _ID,
                        "language": {"type": "string"},
                    },
                    "required": ["goto"],
                    "additionalProperties": False,
                },
            },
        },
        ["choices"],
    ),
    "collect": _node(
        "collect",
        _PROMPTS,
        {
            "help": _PROMPTS,
            "invalid": _PROMPTS,
            "barge_in": _BARGE_IN,
            "spoken_digits": {
                "type": "boolean",
                "description": "the caller may also say the digits one by one in words; never with secret",
            },
            "into": _ID,
            "length": {
                "oneOf": [
                    {"type": "integer", "minimum": 1, "maximum": 32},
                    {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 1, "maximum": 32},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                ]
            },
            "terminator": {"type": ["string", "null"], "enum": ["#", "*", None]},
            "check": {"enum": ["length", "luhn", "ean13", "card", "ru_phone"]},
            "secret": {"type": "boolean"},
            "integer": {"type": "boolean", "description": "store as a number (days, points)"},
            "first_digit_timeout": {"type": "number", "exclusiveMinimum": 0},
            "inter_digit_timeout": {"type": "number", "exclusiveMinimum": 0},
            "goto": _ID,
        },
        ["into", "length", "goto"],
    ),
    "say": _node("say", _PROMPTS, {"goto": _ID, "barge_in": _BARGE_IN}, ["goto"]),
    "confirm": _node(
        "confirm", _PROMPTS, {"help": _PROMPTS, "barge_in": _BARGE_IN, "yes": _ID, "no": _ID}, ["yes", "no"]
    ),
    "action": _node(
        "action",
        {"type": "string", "pattern": r"^[a-z_]+\.[a-z_]+$"},
        {
            "args": {"type": "object"},
            "results": {"type": "object", "additionalProperties": _ID},
            "default": _ID,
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
        },
        ["results"],
    ),
    "transfer": _node(
        "transfer",
        {"type": ["string", "null"], "description": "queue; null: the line's operator queue"},
        {
            "reason": {"type": "string"},
            "context": {"type": "array", "items": {"type": "string"}},
            "say": _PROMPTS,
        },
        [],
    ),
    "call": _node("call", _ID, {"goto": _ID}, ["goto"]),
    "return": _node("return", {"const": True}, {}, []),
    "language": _node("language", {"type": "string"}, {"goto": _ID}, ["goto"]),
    "if": _node(
        "if",
        {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "when": {
                        "oneOf": [
                            {"$ref": "#/$defs/condition"},
                            {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
                        ]
                    },
                    "goto": _ID,
                },
                "required": ["when", "goto"],
                "additionalProperties": False,
            },
        },
        {"else": _ID},
        ["else"],
    ),
    "set": _node("set", {"type": "object", "minProperties": 1}, {"goto": _ID}, ["goto"]),
    "choose": _node(
        "choose",
        {"type": "string", "description": "list variable with items {key, name, ...}"},
        {
            "say": _PROMPTS,
            "help": _PROMPTS,
            "item": {"$ref": "#/$defs/prompt"},
            "barge_in": _BARGE_IN,
            "into": _ID,
            "goto": _ID,
            "empty": _ID,
        },
        ["into", "goto"],
    ),
    "hangup": _node("hangup", _PROMPTS, {"reason": {"type": "string"}}, []),
}


def tree_schema() -> dict[str, Any]:
    """JSON Schema of a tree file."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "ivr-selfservice/tree.schema.json",
        "title": "IVR prompt tree",
        "type": "object",
        "properties": {
            "version": {"type": ["string", "integer"], "description": "bump on every published change"},
            "line": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "description": {"type": "string"},
            "settings": {
                "type": "object",
                "properties": {
                    "languages": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "default_language": {"type": "string"},
                    "start": _ID,
                    "main_menu": _ID,
                    "operator_queue": {"type": "string"},
                    "max_call_seconds": {"type": "integer", "minimum": 30},
                    "action_timeout": {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": 120,
                        "description": "seconds an action may take before the apology and the operator",
                    },
                    "hold_after": {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "description": "seconds of waiting for an action before the hold prompt plays",
                    },
                    "timeouts": {
                        "type": "object",
                        "properties": {
                            "first_digit": {"type": "number", "exclusiveMinimum": 0},
                            "inter_digit": {"type": "number", "exclusiveMinimum": 0},
                        },
                        "additionalProperties": False,
                    },
                    "keys": {
                        "type": "object",
                        "properties": {
                            "repeat": {"type": "string", "pattern": "^[0-9*#]?$"},
                            "back": {"type": "string", "pattern": "^[0-9*#]?$"},
                            "main": {"type": "string", "pattern": "^[0-9*#]?$"},
                            "operator": {"type": "string", "pattern": "^[0-9*#]?$"},
                            "phrases": {
                                "type": "object",
                                "description": "language -> {repeat|back|main|operator: [phrases]}",
                                "additionalProperties": {
                                    "type": "object",
                                    "propertyNames": {"enum": ["repeat", "back", "main", "operator"]},
                                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                    "confirm_phrases": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "yes": {"type": "array", "items": {"type": "string"}},
                                "no": {"type": "array", "items": {"type": "string"}},
                            },
                            "required": ["yes", "no"],
                            "additionalProperties": False,
                        },
                    },
                    "retries": _RETRIES,
                    "prompts": {
                        "type": "object",
                        "description": "keys of the prompts the engine plays itself",
                        "properties": {
                            name: {"type": "string"}
                            for name in ("error", "goodbye", "time_exceeded", "transfer", "help", "hold")
                        },
                        "additionalProperties": False,
                    },
                },
                "required": ["languages"],
                "additionalProperties": False,
            },
            "nodes": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": _ID,
                "additionalProperties": {"$ref": "#/$defs/node"},
            },
        },
        "required": ["version", "line", "settings", "nodes"],
        "additionalProperties": False,
        "$defs": {
            "condition": _CONDITION,
            "prompt": _PROMPT,
            "node": {
                "type": "object",
                "description": "exactly one of the node kinds: " + ", ".join(NODE_KINDS),
                "oneOf": [{"$ref": f"#/$defs/{kind}"} for kind in NODE_KINDS],
            },
            **_NODES,
        },
    }


def schema_json() -> str:
    return json.dumps(tree_schema(), ensure_ascii=False, indent=2) + "\n"
