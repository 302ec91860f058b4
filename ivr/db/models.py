"""The domain's tables as typed SQLAlchemy 2 models.

Conventions: money is `Numeric(12, 2)` read as `Decimal` (never float); times are naive UTC `DateTime`
(SQLite keeps no zone; the services' clock gives naive UTC); phone numbers are 11 digits starting with 7.
Secrets (PIN, web password) are stored only as hashes; an SMS text may carry a temporary password or a
new card number because the outbox is the delivery channel, never the application log.

Money and points change only under a lock on the `Account` row (`SELECT ... FOR UPDATE` on PostgreSQL,
`BEGIN IMMEDIATE` on SQLite, see `ivr.db.session`); `Account.version` is bumped on every such change so
an optimistic reader can tell.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(12, 2, asdecimal=True)
ZERO = Decimal("0.00")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Plan(Base):
    """A tariff plan. `kind` says which customers may have it (personal/corporate); archived plans stay
    on the subscribers who have them but are offered to nobody."""

    __tablename__ = "plan"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    monthly_fee: Mapped[Decimal] = mapped_column(Money)
    minutes: Mapped[int] = mapped_column(Integer, default=0)
    sms: Mapped[int] = mapped_column(Integer, default=0)
    data_mb: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16), default="personal")  # personal | corporate
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")


class Account(Base):
    """Who pays (mobile) or who collects points (loyalty). Balance, credit and points live here."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # personal-account number
    kind: Mapped[str] = mapped_column(String(16))  # mobile | loyalty
    holder: Mapped[str] = mapped_column(String(200))
    corporate: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | closed
    balance: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    credit_limit: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    trust_credit: Mapped[bool] = mapped_column(Boolean, default=False)
    next_billing_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    bonus_enrolled_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The programme's mailings the holder agreed to (loyalty line: by SMS, by e-mail).
    mailing_sms: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    mailing_email: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    points: Mapped[int] = mapped_column(Integer, default=0)  # cache of the ledger: sum(points_entry.delta)
    version: Mapped[int] = mapped_column(Integer, default=0)

    subscribers: Mapped[list[Subscriber]] = relationship(back_populates="account")


class Subscriber(Base):
    """A phone number (MSISDN) on an account, with its plan, package remainders and credentials."""

    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(11), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | closed
    access_level: Mapped[str] = mapped_column(String(16), default="manage_account")
    language: Mapped[str] = mapped_column(String(5), default="ru")
    roaming: Mapped[bool] = mapped_column(Boolean, default=False)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan.id"), nullable=True)
    pending_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan.id"), nullable=True)
    pending_plan_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    plan_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    minutes_left: Mapped[int] = mapped_column(Integer, default=0)
    sms_left: Mapped[int] = mapped_column(Integer, default=0)
    data_mb_left: Mapped[int] = mapped_column(Integer, default=0)
    # IVR authentication
    pin_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    pin_locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Web personal account
    web_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    web_password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    web_must_change: Mapped[bool] = mapped_column(Boolean, default=False)
    web_failures: Mapped[int] = mapped_column(Integer, default=0)
    web_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where a detailed statement goes; without one, a summary goes by SMS.
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)

    account: Mapped[Account] = relationship(back_populates="subscribers")
    plan: Mapped[Plan | None] = relationship(foreign_keys=[plan_id])
    pending_plan: Mapped[Plan | None] = relationship(foreign_keys=[pending_plan_id])


class Charge(Base):
    """Money taken from an account (plan fee, option, subscription, calls)."""

    __tablename__ = "charge"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscriber.id"), nullable=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class Payment(Base):
    """Money put on an account (including promised payments, `kind="promised"`)."""

    __tablename__ = "payment"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    kind: Mapped[str] = mapped_column(String(16), default="cash")  # cash | card | promised
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class PromisedPayment(Base):
    __tablename__ = "promised_payment"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    until: Mapped[dt.date] = mapped_column(Date)
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Option(Base):
    """A switchable service option (roaming packs, caller ID, ...) with a monthly price."""

    __tablename__ = "option"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[Decimal] = mapped_column(Money)
    sort: Mapped[int] = mapped_column(Integer, default=0)


class SubscriberOption(Base):
    __tablename__ = "subscriber_option"
    __table_args__ = (UniqueConstraint("subscriber_id", "option_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"), index=True)
    option_id: Mapped[int] = mapped_column(ForeignKey("option.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime)

    option: Mapped[Option] = relationship()


class ContentSubscription(Base):
    """A paid third-party content subscription billed to the number."""

    __tablename__ = "content_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[Decimal] = mapped_column(Money)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Package(Base):
    """An extra package of minutes, SMS or data a subscriber may buy on top of the plan: charged to the
    balance at once, valid for `validity_days` from the purchase."""

    __tablename__ = "package"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # minutes | sms | data_mb
    quantity: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    validity_days: Mapped[int] = mapped_column(Integer)
    sort: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PackagePurchase(Base):
    """A package bought: what is left of it and until when. The balance report adds the remainders of
    the packages not yet expired to the plan's."""

    __tablename__ = "package_purchase"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"), index=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("package.id"))
    kind: Mapped[str] = mapped_column(String(16))
    remaining: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    bought_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)

    package: Mapped[Package] = relationship()


class NumberBlock(Base):
    """A voluntary block of a number. Active while `starts_at <= now < ends_at` and not ended early."""

    __tablename__ = "number_block"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    reason: Mapped[str] = mapped_column(String(32), default="voluntary")


class LoyaltyCard(Base):
    """A loyalty card. The full number is stored (it identifies the card at the till) but never logged
    nor said: the line reads the last four digits only."""

    __tablename__ = "loyalty_card"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(19), unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | blocked | replaced
    virtual: Mapped[bool] = mapped_column(Boolean, default=False)
    registered_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    blocked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("loyalty_card.id"), nullable=True)


class Reward(Base):
    """Something points buy. `kind` says what redemption adds: minutes / sms / data_mb to the number, or
    a voucher (nothing added to the account, the SMS carries it)."""

    __tablename__ = "reward"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    points: Mapped[int] = mapped_column(Integer)
    programme: Mapped[str] = mapped_column(String(16))  # mobile | loyalty (matches Account.kind)
    kind: Mapped[str] = mapped_column(String(16))  # minutes | sms | data_mb | voucher
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    sort: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PointsEntry(Base):
    """The points ledger. Every change of `Account.points` is one entry with the same `delta`.
    Grants (delta > 0) carry `expires_at` and `remaining` (what is left of them after spending, oldest
    expiry first); spending and expiry entries have delta < 0."""

    __tablename__ = "points_entry"
    __table_args__ = (Index("ix_points_entry_account_expiry", "account_id", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    kind: Mapped[str] = mapped_column(
        String(16)
    )  # grant | redeem | transfer_out | transfer_in | expire | forfeit
    delta: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    note: Mapped[str] = mapped_column(String(200), default="")


class PasswordReset(Base):
    """One web-password reset (for the daily limit). Holds no password."""

    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class SmsOutbox(Base):
    """SMS waiting for delivery, written in the same transaction as the change it reports."""

    __tablename__ = "sms_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(11))
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class EmailOutbox(Base):
    """E-mail waiting for delivery (detailed statements), written in the transaction that asked for it."""

    __tablename__ = "email_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class StatementOrder(Base):
    """A detailed statement ordered by phone: for which period, and how it was sent."""

    __tablename__ = "statement_order"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"), index=True)
    period: Mapped[str] = mapped_column(String(16))  # week | month | last_month
    period_from: Mapped[dt.date] = mapped_column(Date)
    period_to: Mapped[dt.date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(8))  # email | sms
    ordered_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class AuditRecord(Base):
    """What changed, when, from which call and line. `detail` never holds a secret."""

    __tablename__ = "audit_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    call_id: Mapped[str] = mapped_column(String(64), default="")
    line: Mapped[str] = mapped_column(String(32), default="")
    action: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subscriber_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class IdempotencyRecord(Base):
    """The first result of a changing operation, by its key (call id + step). A retry with the same key
    gets this result back and changes nothing."""

    __tablename__ = "idempotency_record"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class OneTimeCode(Base):
    """A one-time code sent by SMS (step-up before a risky action, PIN unlock, PIN change). Only its hash
    is kept; it expires, allows a few attempts and is used once (`used_at`)."""

    __tablename__ = "one_time_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # step_up | unlock
    call_id: Mapped[str] = mapped_column(String(64), default="")
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class AuthFailure(Base):
    """One failed secret (PIN or one-time code) check, for throttling distributed guessing: counted per
    caller (caller ID, or one bucket for withheld) and per target number over a sliding hour."""

    __tablename__ = "auth_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    caller: Mapped[str] = mapped_column(String(20), index=True)
    target: Mapped[str] = mapped_column(String(11), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # pin | otp


class IvrCall(Base):
    """One record per call (ivr.app.records): where the caller went, what they entered (masked), which
    actions ran, and how the call ended. The caller's number is kept only masked, plus a keyed hash
    (`caller_key`) so that a repeat call can be recognised without storing the number."""

    __tablename__ = "ivr_call"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    line: Mapped[str] = mapped_column(String(32))
    did: Mapped[str] = mapped_column(String(32), default="")
    caller_masked: Mapped[str] = mapped_column(String(32), default="")  # e.g. 7916*****67; "" = withheld
    caller_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    trust: Mapped[str] = mapped_column(String(16), default="none")  # caller_id | pin | card | code | none
    tree_version: Mapped[str] = mapped_column(String(32), default="")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    ended_at: Mapped[dt.datetime] = mapped_column(DateTime)
    seconds: Mapped[float] = mapped_column(Float)
    # self_served | transferred | abandoned | failed
    outcome: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(String(16))  # the session's own: hangup, transfer, caller_hangup, ...
    transfer_reason: Mapped[str] = mapped_column(String(64), default="")
    queue: Mapped[str] = mapped_column(String(64), default="")
    queue_wait: Mapped[float | None] = mapped_column(Float, nullable=True)  # seconds, once queues report it
    queue_result: Mapped[str] = mapped_column(
        String(16), default="", server_default=""
    )  # answered | abandoned
    subscriber_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_node: Mapped[str] = mapped_column(String(64), default="")
    # [{"node", "at_ms"}], [{"node", "kind", "value", "at_ms"}], [{"name", "status", "ms"}]
    nodes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The server node that answered the call (settings.node_name; "" on a single machine).
    node: Mapped[str] = mapped_column(String(32), default="", server_default="")

    __table_args__ = (Index("ix_ivr_call_line_started", "line", "started_at"),)


OPEN_CALLBACK = "status IN ('pending', 'dialing')"


class CallbackRequest(Base):
    """A caller who chose to be called back instead of waiting in an operator queue (ivr.app.queueing).
    `ivr serve` places it later through AMI (ivr.app.callbacks): an agent first, then the caller.

    States: pending (due at `due_at`) -> dialing (claimed by one server: `claimed_by`, `attempts` + 1) ->
    done | pending again (retry, when the agent or the caller did not answer) | failed (attempts used up,
    or a claim whose outcome was lost: it is never placed twice). The number is kept in full because the
    call must reach it; it never appears in a log or a metric."""

    __tablename__ = "callback_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)  # the call that asked: one request each
    line: Mapped[str] = mapped_column(String(32))
    did: Mapped[str] = mapped_column(String(32), default="")
    queue: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(8), default="ru")
    # What the agent should know (the transfer's context: no secret), as for a live transfer.
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime)
    due_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_result: Mapped[str] = mapped_column(String(32), default="")

    # At most one open request per number and queue, whichever server books it: the second of two bookings
    # at the same instant (two calls from one number, on one node or on two) fails here and is told
    # "already booked" (ivr.services.callbacks.book).
    __table_args__ = (
        Index(
            "uq_callback_request_open",
            "number",
            "queue",
            unique=True,
            sqlite_where=text(OPEN_CALLBACK),
            postgresql_where=text(OPEN_CALLBACK),
        ),
    )


# ---- the staff console (ivr/web) --------------------------------------------------------------------


class StaffUser(Base):
    """A support-staff account of the console. The password is kept only as an argon2id hash. Roles, each
    including the ones before it: viewer (read, hear, try), editor (drafts, save versions), publisher
    (publish, roll back), admin (accounts). Five failed logins in a row lock the account for a while."""

    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class StaffAudit(Base):
    """What staff did in the console: saves, publishes, rollbacks, uploads, logins and account changes.
    `detail` holds the diff of a change (texts and trees hold no secret) or a short message."""

    __tablename__ = "staff_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    line: Mapped[str] = mapped_column(String(32), default="")
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class TreeVersion(Base):
    """One saved version of a line: every file of the line (the tree, its texts per language, recordings
    made by people) by its path under prompts/. Versions are numbered per line and never change; the live
    version is the last one published. A rollback publishes a new version with an old one's files. The
    files under prompts/ are the published state (and the seed of version 1)."""

    __tablename__ = "tree_version"
    __table_args__ = (UniqueConstraint("line", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    line: Mapped[str] = mapped_column(String(32), index=True)
    number: Mapped[int] = mapped_column(Integer)
    base: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the version it was edited from
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    published_by: Mapped[str] = mapped_column(String(64), default="")


class TreeDraft(Base):
    """An editor's own work in progress on a line, started from version `base`. Only its author sees and
    changes it; saving it as a version is refused when the line has moved past `base`."""

    __tablename__ = "tree_draft"
    __table_args__ = (UniqueConstraint("line", "author"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    line: Mapped[str] = mapped_column(String(32))
    author: Mapped[str] = mapped_column(String(64))
    base: Mapped[int] = mapped_column(Integer)
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
