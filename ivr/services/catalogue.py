"""Names the line speaks that come from the database (plans, options, paid subscriptions, rewards, charge
titles). Prompt rendering turns each into audio ahead of time, so a call never waits for synthesis."""

from __future__ import annotations

from sqlalchemy import select

from ivr.db.models import Charge, ContentSubscription, Option, Plan, Reward
from ivr.db.session import UnitOfWork


def spoken_names(uow: UnitOfWork) -> list[str]:
    """Every distinct name a prompt may say with a `{...:name}` placeholder, sorted."""
    names: set[str] = set()
    for column in (Plan.name, Option.name, ContentSubscription.name, Reward.name, Charge.title):
        names.update(n for n in uow.session.scalars(select(column).distinct()) if n and n.strip())
    return sorted(names)
