"""A node of several (docs/scale-out.md): each node runs Asterisk and one `ivr serve` with prompts/ and
var/sounds of its own, and all share one database. `VersionFollower` (follow.py) keeps a node's files at the
versions the staff console published there."""
