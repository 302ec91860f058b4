"""Facts about numbers that several layers must agree on, as pure functions: phone numbers as callers,
trunks and keypads send them (`phone`), and card numbers with their check digits (`cards`).

It imports nothing of ivr, so the engine (checking keyed digits), the services (checking what they store)
and the wiring (reading caller ID) all share one definition."""
