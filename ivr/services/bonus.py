"""Bonus points: enrolment, balance, reward catalogue, redemption, transfer, expiry.

Points belong to an account (a mobile account or a loyalty-card account) and are kept in a ledger
(`points_entry`). Every grant carries its own expiry (`POINTS_LIFETIME` after it was earned by default)
and a `remaining` count; spending takes from the grants that expire first. Expired remainders are written
off by an `expire` entry the next time the account's points change (`sweep_expired`), and are never
counted as spendable meanwhile (`live_points`). Invariants, checked by the tests:
`Account.points == sum(entry.delta) == sum(grant.remaining)`, and no grant's remaining is negative.

All changes happen under the account row lock (accounts locked in id order for transfers), so concurrent
redemptions cannot overspend; each change takes an idempotency key.
Access: redeeming, transferring and enrolling need `manage_account` (`forbidden` otherwise).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, func, or_, select

from ivr.db.models import Account, PointsEntry, Reward, Subscriber
from ivr.db.session import UnitOfWork
from ivr.services.auth import find_subscriber
from ivr.services.common import (
    MENU_KEYS,
    NO_ORIGIN,
    Origin,
    audit,
    load_subscriber,
    lock_account,
    lock_accounts,
    lock_subscriber_and_account,
    may_change_account,
    once,
    pick_listed,
    queue_sms,
)

log = logging.getLogger(__name__)

POINTS_LIFETIME = dt.timedelta(days=365)
EXPIRY_WARNING = dt.timedelta(days=30)
MAX_TRANSFER = 100_000
GRANT_KINDS = ("grant", "transfer_in")


@dataclass(frozen=True)
class PointsBalance:
    status: str  # ok | not_enrolled
    points: int = 0
    expiring_points: int = 0
    expiry_date: dt.date | None = None


@dataclass(frozen=True)
class EnrolResult:
    status: str  # ok | already_enrolled | forbidden


@dataclass(frozen=True)
class RewardLine:
    key: str
    code: str
    name: str
    points: int


@dataclass(frozen=True)
class Catalogue:
    status: str  # ok | none
    rewards: tuple[RewardLine, ...] = ()


@dataclass(frozen=True)
class Redemption:
    status: str  # ok | insufficient_points | unknown_reward | not_enrolled | forbidden
    reward_name: str | None = None
    points_left: int | None = None


@dataclass(frozen=True)
class Transfer:
    status: str  # ok | insufficient_points | unknown_recipient | invalid_amount | not_enrolled | forbidden
    points_left: int | None = None
    points: int | None = None


# Built once (UnitOfWork.rows): read on every balance report and every points operation.
_LIVE_POINTS = select(func.coalesce(func.sum(PointsEntry.remaining), 0)).where(
    PointsEntry.account_id == bindparam("account"),
    PointsEntry.remaining > 0,
    or_(PointsEntry.expires_at.is_(None), PointsEntry.expires_at > bindparam("now")),
)


def live_points(uow: UnitOfWork, account_id: int) -> int:
    """Spendable points now: remainders of grants not yet expired."""
    rows = uow.rows(_LIVE_POINTS, account=account_id, now=uow.now())
    return int(rows[0][0] or 0) if rows else 0


def _add_entry(uow: UnitOfWork, account: Account, kind: str, delta: int, **fields: object) -> PointsEntry:
    entry = PointsEntry(account_id=account.id, kind=kind, delta=delta, created_at=uow.now(), **fields)
    uow.session.add(entry)
    account.points += delta
    account.version += 1
    return entry


def sweep_expired(uow: UnitOfWork, account: Account) -> int:
    """Write off expired remainders of a locked account. Returns the points written off."""
    grants = uow.session.scalars(
        select(PointsEntry).where(
            PointsEntry.account_id == account.id,
            PointsEntry.remaining > 0,
            PointsEntry.expires_at.is_not(None),
            PointsEntry.expires_at <= uow.now(),
        )
    ).all()
    total = 0
    for grant in grants:
        total += grant.remaining
        _add_entry(uow, account, "expire", -grant.remaining, note=f"grant {grant.id}")
        grant.remaining = 0
    return total


def expire_all(uow: UnitOfWork, *, origin: Origin = NO_ORIGIN) -> int:
    """Billing job: write off expired remainders on every account. Returns the points written off."""
    account_ids = uow.session.scalars(
        select(PointsEntry.account_id)
        .where(
            PointsEntry.remaining > 0,
            PointsEntry.expires_at.is_not(None),
            PointsEntry.expires_at <= uow.now(),
        )
        .distinct()
    ).all()
    total = 0
    for account_id in sorted(account_ids):
        written_off = sweep_expired(uow, lock_account(uow, account_id))
        if written_off:
            audit(uow, origin, "bonus.expire", account_id=account_id, points=written_off)
        total += written_off
    return total


def grant_points(
    uow: UnitOfWork,
    account_id: int,
    points: int,
    *,
    expires_at: dt.datetime | None = None,
    note: str = "",
    kind: str = "grant",
    origin: Origin = NO_ORIGIN,
) -> None:
    """Credit points to an account (purchases, welcome gifts, seed data)."""
    if points <= 0:
        raise ValueError("a grant is positive")
    account = lock_account(uow, account_id)
    _grant(uow, account, points, expires_at=expires_at, note=note, kind=kind)
    audit(uow, origin, "bonus.grant", account_id=account.id, points=points)


def _grant(
    uow: UnitOfWork, account: Account, points: int, *, expires_at: dt.datetime | None, note: str, kind: str
) -> None:
    expires = expires_at if expires_at is not None else uow.now() + POINTS_LIFETIME
    _add_entry(uow, account, kind, points, remaining=points, expires_at=expires, note=note)


def _spend(uow: UnitOfWork, account: Account, points: int, kind: str, note: str) -> None:
    """Take points from the grants expiring first. The caller checked `live_points >= points`."""
    grants = uow.session.scalars(
        select(PointsEntry)
        .where(
            PointsEntry.account_id == account.id,
            PointsEntry.remaining > 0,
            or_(PointsEntry.expires_at.is_(None), PointsEntry.expires_at > uow.now()),
        )
        .order_by(PointsEntry.expires_at.is_(None), PointsEntry.expires_at, PointsEntry.id)
    ).all()
    left = points
    for grant in grants:
        take = min(left, grant.remaining)
        grant.remaining -= take
        left -= take
        if left == 0:
            break
    if left:
        raise RuntimeError("points ledger out of step with the balance")
    _add_entry(uow, account, kind, -points, note=note)


def forfeit_all(uow: UnitOfWork, account: Account) -> int:
    """Write off every point of a locked account (it leaves the programme): expired remainders as
    `expire`, the live ones as one `forfeit` entry. Returns the live points lost."""
    sweep_expired(uow, account)
    points = live_points(uow, account.id)
    if points:
        _spend(uow, account, points, "forfeit", "left the programme")
    return points


def points_balance(uow: UnitOfWork, account_id: int) -> PointsBalance:
    account = uow.session.get(Account, int(account_id))
    if account is None or account.bonus_enrolled_at is None:
        return PointsBalance(status="not_enrolled")
    now = uow.now()
    soon = uow.session.execute(
        select(func.coalesce(func.sum(PointsEntry.remaining), 0), func.min(PointsEntry.expires_at)).where(
            PointsEntry.account_id == account.id,
            PointsEntry.remaining > 0,
            PointsEntry.expires_at > now,
            PointsEntry.expires_at <= now + EXPIRY_WARNING,
        )
    ).one()
    expiring = int(soon[0] or 0)
    first_expiry: dt.datetime | None = soon[1]
    return PointsBalance(
        status="ok",
        points=live_points(uow, account.id),
        expiring_points=expiring,
        expiry_date=first_expiry.date() if expiring and first_expiry is not None else None,
    )


def enrol(
    uow: UnitOfWork, subscriber_id: int, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> EnrolResult:
    def run() -> EnrolResult:
        sub = load_subscriber(uow, subscriber_id)
        account = lock_account(uow, sub.account_id)
        if account.bonus_enrolled_at is not None:
            return EnrolResult(status="already_enrolled")  # a fact, whoever asks
        if not may_change_account(sub):
            return EnrolResult(status="forbidden")
        account.bonus_enrolled_at = uow.now()
        account.version += 1
        audit(uow, origin, "bonus.enrol", account_id=account.id, subscriber_id=sub.id)
        return EnrolResult(status="ok")

    return once(uow, key, "bonus.enrol", EnrolResult, run)


def _rewards(uow: UnitOfWork, account: Account) -> list[Reward]:
    rows = uow.session.scalars(
        select(Reward)
        .where(Reward.programme == account.kind, Reward.active.is_(True))
        .order_by(Reward.sort, Reward.points, Reward.code)
    ).all()
    return list(rows[: len(MENU_KEYS)])


def catalogue(uow: UnitOfWork, account_id: int) -> Catalogue:
    account = uow.session.get(Account, int(account_id))
    if account is None:
        return Catalogue(status="none")
    lines = tuple(
        RewardLine(key=key, code=r.code, name=r.name, points=r.points)
        for key, r in zip(MENU_KEYS, _rewards(uow, account), strict=False)
    )
    return Catalogue(status="ok" if lines else "none", rewards=lines)


def redeem(
    uow: UnitOfWork,
    subscriber_id: int,
    *,
    reward_code: str | None = None,
    reward_key: str | None = None,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> Redemption:
    def run() -> Redemption:
        sub, account = lock_subscriber_and_account(uow, subscriber_id)  # packages change too
        if not may_change_account(sub):
            return Redemption(status="forbidden")
        if account.bonus_enrolled_at is None:
            return Redemption(status="not_enrolled")
        rewards = _rewards(uow, account)
        reward = pick_listed(rewards, reward_key, reward_code, lambda r: r.code)
        if reward is None:
            return Redemption(status="unknown_reward")
        sweep_expired(uow, account)
        have = live_points(uow, account.id)
        if have < reward.points:
            return Redemption(status="insufficient_points", reward_name=reward.name, points_left=have)
        _spend(uow, account, reward.points, "redeem", reward.code)
        _deliver_reward(uow, sub, reward)
        audit(
            uow,
            origin,
            "bonus.redeem",
            account_id=account.id,
            subscriber_id=sub.id,
            reward=reward.code,
            points=reward.points,
        )
        return Redemption(status="ok", reward_name=reward.name, points_left=have - reward.points)

    return once(uow, key, "bonus.redeem", Redemption, run)


def _deliver_reward(uow: UnitOfWork, sub: Subscriber, reward: Reward) -> None:
    if reward.kind == "minutes":
        sub.minutes_left += reward.quantity
    elif reward.kind == "sms":
        sub.sms_left += reward.quantity
    elif reward.kind == "data_mb":
        sub.data_mb_left += reward.quantity
    elif reward.kind == "voucher":
        voucher = "-".join(secrets.token_hex(2).upper() for _ in range(3))
        text = (
            f"Ваш купон «{reward.name}»: {voucher}. Покажите его на кассе."
            if sub.language != "en"
            else f"Your voucher '{reward.name}': {voucher}. Show it at the till."
        )
        queue_sms(uow, sub.msisdn, text, "voucher")
    else:
        raise ValueError(f"unknown reward kind {reward.kind!r}")


def _amount(value: object) -> int | None:
    try:
        points = int(str(value))
    except (TypeError, ValueError):
        return None
    return points if 0 < points <= MAX_TRANSFER else None


def transfer(
    uow: UnitOfWork,
    subscriber_id: int,
    to_number: str,
    points: object,
    *,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> Transfer:
    """Give points to another participant of the same programme (identified by phone number)."""

    def run() -> Transfer:
        sub = load_subscriber(uow, subscriber_id)
        if not may_change_account(sub):
            return Transfer(status="forbidden")
        amount = _amount(points)
        if amount is None:
            return Transfer(status="invalid_amount")
        recipient = find_subscriber(uow, to_number)
        if recipient is None or recipient.status == "closed" or recipient.account_id == sub.account_id:
            return Transfer(status="unknown_recipient")
        locked = lock_accounts(uow, [sub.account_id, recipient.account_id])
        source, target = locked[sub.account_id], locked[recipient.account_id]
        if source.bonus_enrolled_at is None:
            return Transfer(status="not_enrolled")
        if target.bonus_enrolled_at is None or target.kind != source.kind or target.status == "closed":
            return Transfer(status="unknown_recipient")
        sweep_expired(uow, source)
        have = live_points(uow, source.id)
        if have < amount:
            return Transfer(status="insufficient_points", points_left=have)
        _spend(uow, source, amount, "transfer_out", f"to account {target.id}")
        _grant(uow, target, amount, expires_at=None, note=f"from account {source.id}", kind="transfer_in")
        audit(
            uow,
            origin,
            "bonus.transfer",
            account_id=source.id,
            subscriber_id=sub.id,
            to_account=target.id,
            points=amount,
        )
        return Transfer(status="ok", points_left=have - amount, points=amount)

    return once(uow, key, "bonus.transfer", Transfer, run)
