"""The staff console (`ivr web`): support staff edit, check, hear, try and publish the menus in a browser."""
