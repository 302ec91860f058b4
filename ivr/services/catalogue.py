"""Names the line speaks that come from the database (plans, options, paid subscriptions, packages, rewards,
charge titles). Prompt rendering turns each into audio ahead of time, so a call never waits for synthesis."""

from __future__ import annotations

from sqlalchemy import select

from ivr.db.models import Charge, ContentSubscription, Option, Package, Plan, Reward
from ivr.db.session import UnitOfWork
from ivr.services.packages import charge_title


def spoken_names(uow: UnitOfWork) -> list[str]:
    """Every distinct name a prompt may say with a `{...:name}` placeholder, sorted."""
    names: set[str] = set()
    for column in (Plan.name, Option.name, ContentSubscription.name, Reward.name, Package.name, Charge.title):
        names.update(n for n in uow.session.scalars(select(column).distinct()) if n and n.strip())
    # A package's charge title exists only once it is bought: render it ahead with the name.
    names.update(charge_title(n) for n in uow.session.scalars(select(Package.name)) if n and n.strip())
    return sorted(names)
