"""The action registry: the names trees use, bound to service functions (contract: docs/contracts.md).

`invoke(name, args, ctx)` runs one action in its own unit of work (one transaction) and never raises:
anything unexpected becomes status "error", logged with the call id and without secrets (the engine
hides statement parameters; PINs are never put into a message). Result values are plain values the prompt
layer can say: Decimal for money, int for counts, datetime.date for dates, str for names, lists of dicts
(each item with a "key" digit) for lists.

Who the action is about comes from the call variables set by earlier results: `subscriber_id`,
`account_id`, `card_id`. An action that needs one that is missing fails with "error" (a tree bug).

Where the contract's status list for an action has no `forbidden`, a refusal for lack of access
(view-only, or manage_own for the account's money and points) is reported with the nearest contract status
and `reason="forbidden"` in the values (`_FORBIDDEN_AS`): payment.promise and credit.trust_enable ->
not_eligible; bonus.redeem and bonus.transfer -> not_enrolled. bonus.enrol has no refusal status at all:
its refusal is "error" (the caller is put through to an operator), logged as a warning.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from ivr.db.session import UnitOfWork
from ivr.engine.actions import ActionInfo
from ivr.engine.events import ActionResult
from ivr.logs import call_id_var
from ivr.services import (
    auth,
    balance,
    blocking,
    bonus,
    cards,
    mailings,
    membership,
    otp,
    packages,
    password,
    statements,
    tariffs,
)
from ivr.services.common import Origin, load_subscriber

log = logging.getLogger(__name__)

UowFactoryLike = Callable[..., UnitOfWork]
Outcome = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class ActionContext:
    call_id: str
    line: str
    language: str
    vars: Mapping[str, Any]
    uow_factory: UowFactoryLike
    idempotency_key: str = ""


@dataclass(frozen=True)
class Action:
    info: ActionInfo
    run: Callable[[UnitOfWork, Mapping[str, Any], ActionContext], Outcome]
    # Needs a write transaction even though the tree need not confirm it (the PIN failure counter).
    writes: bool = False


class MissingContext(Exception):
    """The call variables lack what the action needs (a tree bug)."""


# Every action, declared once beside its function by @action: name, the statuses it returns, the argument
# names it takes, the names of its result values, and whether it changes something (the tree must confirm
# first) or only writes (a PIN failure counter).
REGISTRY: dict[str, Action] = {}

ActionRun = Callable[[UnitOfWork, Mapping[str, Any], ActionContext], Outcome]


def action(
    name: str, *, statuses: str, args: str = "", values: str = "", changes: bool = False, writes: bool = False
) -> Callable[[ActionRun], ActionRun]:
    def register(run: ActionRun) -> ActionRun:
        if name in REGISTRY:
            raise ValueError(f"action {name} declared twice")
        info = ActionInfo(
            name=name,
            statuses=frozenset(statuses.split()),
            changes_state=changes,
            args=frozenset(args.split()),
            values=frozenset(values.split()),
        )
        REGISTRY[name] = Action(info=info, run=run, writes=writes or changes)
        return run

    return register


# Contract statuses lack "forbidden" for these: the refusal is said with this status (+ reason value).
_FORBIDDEN_AS: dict[str, str | None] = {
    "payment.promise": "not_eligible",
    "credit.trust_enable": "not_eligible",
    "bonus.enrol": None,
    "bonus.redeem": "not_enrolled",
    "bonus.transfer": "not_enrolled",
}


# --- helpers -----------------------------------------------------------------------------------------


def _int_var(ctx: ActionContext, name: str) -> int:
    value = ctx.vars.get(name)
    if value is None or value == "":
        raise MissingContext(f"call variable {name} is not set")
    return int(value)


def _subscriber(ctx: ActionContext) -> int:
    return _int_var(ctx, "subscriber_id")


def _account(ctx: ActionContext) -> int:
    return _int_var(ctx, "account_id")


def _origin(ctx: ActionContext) -> Origin:
    return Origin(call_id=ctx.call_id, line=ctx.line)


def _key(ctx: ActionContext) -> str | None:
    return ctx.idempotency_key or None


def _arg(args: Mapping[str, Any], name: str) -> Any:
    """An argument, with "" (an unset variable substituted into a template) read as absent."""
    value = args.get(name)
    return None if value is None or (isinstance(value, str) and value.strip() == "") else value


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "да", "вкл"):
        return True
    if text in ("0", "false", "no", "off", "нет", "выкл", "2"):
        return False
    raise ValueError("not a yes/no value")


def _items(rows: Any, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{k: v for k, v in dataclasses.asdict(r).items() if k not in drop} for r in rows]


def _values(result: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(result, name) for name in names}


# --- actions -----------------------------------------------------------------------------------------


@action(
    "subscriber.identify",
    statuses="found unknown closed",
    args="number",
    values="subscriber_id account_id access_level msisdn pin_set authenticated auth_method",
)
def _identify(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    number = _arg(args, "number")
    from_caller_id = number is None
    if from_caller_id:
        number = ctx.vars.get("caller_id")
    found = auth.identify(uow, None if number is None else str(number))
    if found.status != "found":
        return found.status, {}
    trusted = from_caller_id and bool(ctx.vars.get("caller_id_trusted"))
    values = _values(found, "subscriber_id", "account_id", "access_level", "msisdn", "pin_set")
    values["authenticated"] = trusted
    if trusted:
        values["auth_method"] = "caller_id"
    return "found", values


@action(
    "subscriber.verify_pin",
    statuses="ok wrong locked unknown no_pin throttled",
    args="number pin",
    values=(
        "subscriber_id account_id access_level authenticated auth_method attempts_left locked_until "
        "locked_minutes"
    ),
    writes=True,
)
def _verify_pin(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    number = _arg(args, "number") or ctx.vars.get("msisdn") or ctx.vars.get("caller_id")
    pin = str(_arg(args, "pin") or "")
    checked = auth.verify_pin(
        uow, None if number is None else str(number), pin, origin=_origin(ctx), caller=_caller(ctx)
    )
    if checked.status == "ok":
        return "ok", {
            "subscriber_id": checked.subscriber_id,
            "account_id": checked.account_id,
            "access_level": checked.access_level,
            "authenticated": True,
            "auth_method": "pin",
            "attempts_left": checked.attempts_left,
        }
    values: dict[str, Any] = {"attempts_left": checked.attempts_left}
    if checked.subscriber_id is not None:
        values["subscriber_id"] = checked.subscriber_id
    if checked.status == "locked" and checked.locked_until is not None:
        values["locked_until"] = checked.locked_until
        seconds = (checked.locked_until - uow.now()).total_seconds()
        values["locked_minutes"] = max(1, int(-(-seconds // 60)))
    return checked.status, values


def _caller(ctx: ActionContext) -> str:
    """The caller's throttling bucket, set by the server from the caller ID (ivr.app.lines)."""
    return str(ctx.vars.get("caller_bucket") or auth.NO_CALLER)


def _otp_purpose(args: Mapping[str, Any]) -> str:
    return str(_arg(args, "purpose") or "step_up")


@action(
    "otp.send", statuses="ok throttled no_phone", args="purpose", values="sms_to valid_minutes", writes=True
)
def _otp_send(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    if ctx.vars.get("subscriber_id") in (None, ""):
        return "no_phone", {}  # e.g. a loyalty card with no phone on its account
    r = otp.send_code(
        uow,
        _subscriber(ctx),
        _otp_purpose(args),
        call_id=ctx.call_id,
        language=ctx.language,
        origin=_origin(ctx),
    )
    return r.status, _values(r, "sms_to", "valid_minutes")


@action(
    "otp.verify",
    statuses="ok wrong expired exhausted throttled",
    args="code purpose",
    values="otp_verified pin_unlocked attempts_left",
    writes=True,
)
def _otp_verify(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    purpose = _otp_purpose(args)
    r = otp.verify_code(
        uow,
        _subscriber(ctx),
        purpose,
        _arg(args, "code"),
        call_id=ctx.call_id,
        caller=_caller(ctx),
        origin=_origin(ctx),
    )
    values: dict[str, Any] = {"attempts_left": r.attempts_left}
    if r.status == "ok":
        if purpose == "step_up":
            values["otp_verified"] = True
        else:
            values["pin_unlocked"] = True
    return r.status, values


def _strongly_authenticated(ctx: ActionContext) -> bool:
    """Current PIN given in this call, or a one-time code confirmed in this call."""
    return ctx.vars.get("auth_method") == "pin" or bool(ctx.vars.get("otp_verified"))


@action(
    "pin.change",
    statuses="ok mismatch weak invalid not_allowed",
    args="pin pin_repeat",
    values="",
    changes=True,
)
def _pin_change(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    subscriber_id = _subscriber(ctx)
    if not ctx.vars.get("authenticated") or not _strongly_authenticated(ctx):
        log.warning("pin.change refused: the caller is not strongly authenticated in this call")
        return "not_allowed", {}
    r = auth.change_pin(
        uow,
        subscriber_id,
        str(_arg(args, "pin") or ""),
        str(_arg(args, "pin_repeat") or ""),
        origin=_origin(ctx),
    )
    return r.status, {}


@action(
    "balance.report",
    statuses="ok",
    values=(
        "balance credit_limit available minutes_left sms_left data_mb_left bonus_points "
        "promised_amount promised_until charges payments charges_count payments_count"
    ),
)
def _balance_report(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    report = balance.report(uow, _subscriber(ctx))
    values = _values(
        report,
        "balance",
        "credit_limit",
        "available",
        "minutes_left",
        "sms_left",
        "data_mb_left",
        "bonus_points",
        "promised_amount",
        "promised_until",
    )
    values["charges"] = [
        {"key": str(i), "amount": c.amount, "date": c.date, "title": c.title}
        for i, c in enumerate(report.charges, 1)
    ]
    values["payments"] = [
        {"key": str(i), "amount": p.amount, "date": p.date} for i, p in enumerate(report.payments, 1)
    ]
    values["charges_count"] = len(report.charges)
    values["payments_count"] = len(report.payments)
    return "ok", values


@action(
    "payment.promise", statuses="ok not_eligible already_active", values="amount until reason", changes=True
)
def _promise(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = balance.promise_payment(uow, _subscriber(ctx), origin=_origin(ctx), key=_key(ctx))
    return r.status, _values(r, "amount", "until")


@action(
    "credit.trust_enable",
    statuses="ok not_eligible already_active",
    values="credit_limit reason",
    changes=True,
)
def _trust(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = balance.enable_trust_credit(uow, _subscriber(ctx), origin=_origin(ctx), key=_key(ctx))
    return r.status, _values(r, "credit_limit")


@action("password.reset", statuses="ok limit_reached no_web_account", values="sms_to", changes=True)
def _password_reset(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = password.reset_password(uow, _subscriber(ctx), origin=_origin(ctx), key=_key(ctx))
    return r.status, _values(r, "sms_to")


@action("web.register", statuses="ok already_registered", values="sms_to login", changes=True)
def _web_register(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = password.register_web_account(uow, _subscriber(ctx), origin=_origin(ctx), key=_key(ctx))
    return r.status, _values(r, "sms_to", "login")


@action("package.list", statuses="ok none", values="packages packages_count")
def _package_list(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = packages.list_packages(uow, _subscriber(ctx))
    return r.status, {"packages": _items(r.packages), "packages_count": len(r.packages)}


@action(
    "package.buy",
    statuses="ok insufficient_funds unknown_package forbidden",
    args="package_key package_code",
    values="package_name price expires",
    changes=True,
)
def _package_buy(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = packages.buy_package(
        uow,
        _subscriber(ctx),
        package_key=_arg(args, "package_key"),
        package_code=_arg(args, "package_code"),
        origin=_origin(ctx),
        key=_key(ctx),
    )
    return r.status, _values(r, "package_name", "price", "expires")


@action(
    "statement.order",
    statuses="ok too_soon invalid_period",
    args="period",
    values="channel expect_minutes charges_count total wait_minutes",
    writes=True,
)
def _statement_order(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = statements.order_statement(
        uow, _subscriber(ctx), str(_arg(args, "period") or ""), origin=_origin(ctx), key=_key(ctx)
    )
    return r.status, _values(r, "channel", "expect_minutes", "charges_count", "total", "wait_minutes")


@action(
    "tariff.current",
    statuses="ok",
    values="plan_code plan_name monthly_fee next_billing_date pending_plan_name pending_date",
)
def _tariff_current(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = tariffs.current_plan(uow, _subscriber(ctx))
    return r.status, _values(
        r, "plan_code", "plan_name", "monthly_fee", "next_billing_date", "pending_plan_name", "pending_date"
    )


@action("tariff.alternatives", statuses="ok none", values="plans plans_count")
def _tariff_alternatives(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = tariffs.alternatives(uow, _subscriber(ctx))
    return r.status, {"plans": _items(r.plans), "plans_count": len(r.plans)}


@action(
    "tariff.change",
    statuses="ok not_eligible same_plan insufficient_funds unknown_plan forbidden",
    args="plan_key plan_code when",
    values="plan_name effective_date fee",
    changes=True,
)
def _tariff_change(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    when = str(_arg(args, "when") or "now").strip().lower()
    when = {"1": "now", "2": "next_period", "next": "next_period"}.get(when, when)
    r = tariffs.change_plan(
        uow,
        _subscriber(ctx),
        plan_code=_arg(args, "plan_code"),
        plan_key=_arg(args, "plan_key"),
        when=when,
        origin=_origin(ctx),
        key=_key(ctx),
    )
    return r.status, _values(r, "plan_name", "effective_date", "fee")


@action("options.list", statuses="ok none", values="options options_count")
def _options_list(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = tariffs.list_options(uow, _subscriber(ctx))
    return r.status, {"options": _items(r.options), "options_count": len(r.options)}


@action(
    "options.set",
    statuses="ok already unknown_option insufficient_funds forbidden",
    args="option_key option_code on",
    values="option_name price",
    changes=True,
)
def _options_set(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = tariffs.set_option(
        uow,
        _subscriber(ctx),
        on=_bool(args.get("on", True)),
        option_code=_arg(args, "option_code"),
        option_key=_arg(args, "option_key"),
        origin=_origin(ctx),
        key=_key(ctx),
    )
    return r.status, _values(r, "option_name", "price")


@action("subscriptions.list", statuses="ok none", values="subscriptions subscriptions_count")
def _subscriptions_list(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = tariffs.list_subscriptions(uow, _subscriber(ctx))
    return r.status, {"subscriptions": _items(r.subscriptions), "subscriptions_count": len(r.subscriptions)}


@action(
    "subscriptions.cancel",
    statuses="ok unknown_subscription forbidden",
    args="subscription_key subscription_code",
    values="subscription_name",
    changes=True,
)
def _subscriptions_cancel(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = tariffs.cancel_subscription(
        uow,
        _subscriber(ctx),
        subscription_code=_arg(args, "subscription_code"),
        subscription_key=_arg(args, "subscription_key"),
        origin=_origin(ctx),
        key=_key(ctx),
    )
    return r.status, _values(r, "subscription_name")


@action(
    "number.block",
    statuses="ok already_blocked invalid_days forbidden",
    args="days",
    values="until blocked",
    changes=True,
)
def _number_block(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = blocking.block_number(uow, _subscriber(ctx), _arg(args, "days"), origin=_origin(ctx), key=_key(ctx))
    return r.status, {"until": r.until, "blocked": r.status in ("ok", "already_blocked")}


@action("number.unblock", statuses="ok not_blocked forbidden", values="blocked", changes=True)
def _number_unblock(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = blocking.unblock_number(uow, _subscriber(ctx), origin=_origin(ctx), key=_key(ctx))
    return r.status, {"blocked": False} if r.status in ("ok", "not_blocked") else {}


def _account_of(uow: UnitOfWork, ctx: ActionContext) -> int:
    if ctx.vars.get("account_id") not in (None, ""):
        return _account(ctx)
    return load_subscriber(uow, _subscriber(ctx)).account_id


@action("bonus.balance", statuses="ok not_enrolled", values="points expiring_points expiry_date")
@action("loyalty.balance", statuses="ok not_enrolled", values="points expiring_points expiry_date")
def _points(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = bonus.points_balance(uow, _account_of(uow, ctx))
    return r.status, _values(r, "points", "expiring_points", "expiry_date")


@action("bonus.enrol", statuses="ok already_enrolled", values="enrolled reason", changes=True)
def _bonus_enrol(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = bonus.enrol(uow, _subscriber(ctx), origin=_origin(ctx), key=_key(ctx))
    return r.status, {"enrolled": r.status in ("ok", "already_enrolled")}


@action("bonus.catalogue", statuses="ok none", values="rewards rewards_count")
def _bonus_catalogue(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = bonus.catalogue(uow, _account_of(uow, ctx))
    return r.status, {"rewards": _items(r.rewards), "rewards_count": len(r.rewards)}


@action(
    "bonus.redeem",
    statuses="ok insufficient_points unknown_reward not_enrolled",
    args="reward_key reward_code",
    values="reward_name points_left reason",
    changes=True,
)
def _bonus_redeem(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = bonus.redeem(
        uow,
        _subscriber(ctx),
        reward_code=_arg(args, "reward_code"),
        reward_key=_arg(args, "reward_key"),
        origin=_origin(ctx),
        key=_key(ctx),
    )
    return r.status, _values(r, "reward_name", "points_left")


@action(
    "bonus.transfer",
    statuses="ok insufficient_points unknown_recipient invalid_amount not_enrolled",
    args="to_number points",
    values="points_left points_transferred reason",
    changes=True,
)
def _bonus_transfer(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = bonus.transfer(
        uow,
        _subscriber(ctx),
        str(_arg(args, "to_number") or ""),
        _arg(args, "points"),
        origin=_origin(ctx),
        key=_key(ctx),
    )
    return r.status, {"points_left": r.points_left, "points_transferred": r.points}


@action(
    "card.identify",
    statuses="found unknown blocked",
    args="card_number number",
    values="card_id account_id subscriber_id card_last4",
)
def _card_identify(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    card_number = _arg(args, "card_number")
    number = _arg(args, "number")
    if card_number is None and number is None:
        number = ctx.vars.get("caller_id")
    r = cards.identify_card(
        uow,
        card_number=None if card_number is None else str(card_number),
        number=None if number is None else str(number),
    )
    if r.status == "unknown":
        return "unknown", {}
    return r.status, _values(r, "card_id", "account_id", "subscriber_id", "card_last4")


@action("card.list", statuses="ok none", values="cards count")
def _card_list(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = cards.list_cards(uow, _account(ctx))
    return r.status, {"cards": _items(r.cards, drop=("card_id",)), "count": r.count}


@action(
    "card.register",
    statuses="ok invalid_number limit_reached already_registered taken",
    args="card_number",
    values="card_last4 count",
    changes=True,
)
def _card_register(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = cards.register_card(
        uow, _account(ctx), str(_arg(args, "card_number") or ""), origin=_origin(ctx), key=_key(ctx)
    )
    return r.status, _values(r, "card_last4", "count")


def _card_target(args: Mapping[str, Any], ctx: ActionContext) -> tuple[Any, int | None]:
    card_key = _arg(args, "card_key")
    card_id = ctx.vars.get("card_id") if card_key is None else None
    return card_key, None if card_id in (None, "") else int(card_id)


@action(
    "card.block",
    statuses="ok already_blocked unknown_card",
    args="card_key",
    values="card_last4",
    changes=True,
)
def _card_block(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    card_key, card_id = _card_target(args, ctx)
    r = cards.block_card(
        uow, _account(ctx), card_key=card_key, card_id=card_id, origin=_origin(ctx), key=_key(ctx)
    )
    return r.status, _values(r, "card_last4")


@action(
    "card.unblock", statuses="ok not_blocked unknown_card", args="card_key", values="card_last4", changes=True
)
def _card_unblock(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    card_key, card_id = _card_target(args, ctx)
    r = cards.unblock_card(
        uow, _account(ctx), card_key=card_key, card_id=card_id, origin=_origin(ctx), key=_key(ctx)
    )
    return r.status, _values(r, "card_last4")


@action(
    "card.delete", statuses="ok last_card unknown_card", args="card_key", values="card_last4", changes=True
)
def _card_delete(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    card_key, card_id = _card_target(args, ctx)
    r = cards.delete_card(
        uow, _account(ctx), card_key=card_key, card_id=card_id, origin=_origin(ctx), key=_key(ctx)
    )
    return r.status, _values(r, "card_last4")


@action("mailing.status", statuses="ok", values="mailing_sms mailing_email")
def _mailing_status(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = mailings.mailing_choice(uow, _subscriber(ctx))
    return r.status, _values(r, "mailing_sms", "mailing_email")


@action(
    "mailing.set",
    statuses="ok already no_email invalid_channel",
    args="channel on",
    values="mailing_channel mailing_on",
    changes=True,
)
def _mailing_set(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = mailings.set_mailing(
        uow,
        _subscriber(ctx),
        str(_arg(args, "channel") or ""),
        _bool(args.get("on", True)),
        origin=_origin(ctx),
        key=_key(ctx),
    )
    return r.status, {"mailing_channel": r.channel, "mailing_on": r.on}


@action(
    "programme.join_start",
    statuses="ok already_member number_taken invalid_number",
    args="number",
    values="subscriber_id",
    writes=True,
)
def _join_start(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = membership.start_joining(
        uow, str(_arg(args, "number") or ""), language=ctx.language, origin=_origin(ctx)
    )
    return r.status, {"subscriber_id": r.subscriber_id} if r.subscriber_id is not None else {}


@action("programme.join", statuses="ok already_member", values="account_id card_id card_last4", changes=True)
def _join(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = membership.join(uow, _subscriber(ctx), origin=_origin(ctx), key=_key(ctx))
    return r.status, _values(r, "account_id", "card_id", "card_last4") if r.status == "ok" else {}


@action("programme.leave_info", statuses="ok already_left", values="leave_points leave_cards")
def _leave_info(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = membership.leave_info(uow, _subscriber(ctx))
    return r.status, _values(r, "leave_points", "leave_cards")


@action(
    "programme.leave",
    statuses="ok redemption_pending already_left",
    values="points_lost cards_closed",
    changes=True,
)
def _leave(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    r = membership.leave_programme(uow, _subscriber(ctx), origin=_origin(ctx), key=_key(ctx))
    return r.status, _values(r, "points_lost", "cards_closed")


@action(
    "card.reissue",
    statuses="ok not_blocked unknown_card",
    args="card_key",
    values="card_last4 new_card_last4",
    changes=True,
)
def _card_reissue(uow: UnitOfWork, args: Mapping[str, Any], ctx: ActionContext) -> Outcome:
    card_key, card_id = _card_target(args, ctx)
    r = cards.reissue_card(
        uow, _account(ctx), card_key=card_key, card_id=card_id, origin=_origin(ctx), key=_key(ctx)
    )
    return r.status, _values(r, "card_last4", "new_card_last4")


# --- the registry ------------------------------------------------------------------------------------

# The values each action may set (ActionInfo.values, for the validator's placeholder check).


# Risky actions: when the call needs step-up (`step_up_required`, set by the server from the line's
# policy and the caller ID's trust, ivr.app.lines), they run only after `otp.verify` succeeded in this
# call. The tree's `step_up` sub-flow asks for the code; this is the server's own check behind it.
STEP_UP_ACTIONS = frozenset(
    {
        "password.reset",
        "web.register",
        "tariff.change",
        "number.unblock",
        "bonus.transfer",
        "bonus.redeem",
        "card.unblock",
        "card.delete",
        "programme.leave",
        "programme.join",
    }
)


def step_up_missing(name: str, ctx: ActionContext) -> bool:
    return (
        name in STEP_UP_ACTIONS
        and bool(ctx.vars.get("step_up_required"))
        and not ctx.vars.get("otp_verified")
    )


def catalog() -> dict[str, ActionInfo]:
    """What the tree validator needs: every action's statuses (without "error"), args, changes_state."""
    return {name: action.info for name, action in REGISTRY.items()}


def invoke(name: str, args: Mapping[str, Any], ctx: ActionContext) -> ActionResult:
    """Run one action in its own transaction. Never raises: failures are status "error"."""
    token = call_id_var.set(ctx.call_id) if ctx.call_id else None
    try:
        action = REGISTRY.get(name)
        if action is None:
            log.error("unknown action %s", name)
            return ActionResult(status="error")
        if step_up_missing(name, ctx):
            log.warning(
                "action %s refused: step-up required and no one-time code confirmed in this call", name
            )
            return ActionResult(status="error", values={"reason": "step_up_required"})
        for attempt in (1, 2):
            try:
                return _run_once(action, args, ctx)
            except IntegrityError:
                # Most likely a concurrent first attempt with the same idempotency key committed first:
                # this transaction rolled back whole; the retry returns the first result.
                if attempt == 2 or not ctx.idempotency_key:
                    raise
                log.info("action %s: retrying after a conflicting concurrent attempt", name)
        raise AssertionError("unreachable")
    except Exception as exc:
        log.error(
            "action %s failed: %s", name, type(exc).__name__, exc_info=not isinstance(exc, MissingContext)
        )
        return ActionResult(status="error")
    finally:
        if token is not None:
            call_id_var.reset(token)


def _run_once(action: Action, args: Mapping[str, Any], ctx: ActionContext) -> ActionResult:
    name = action.info.name
    with ctx.uow_factory(write=action.writes) as uow:
        status, values = action.run(uow, args, ctx)
        if status == "forbidden" and status not in action.info.statuses:
            mapped = _FORBIDDEN_AS.get(name)
            if mapped is None:
                log.warning("action %s refused for lack of access; the contract has no status for it", name)
                return ActionResult(status="error", values={"reason": "forbidden"})
            status, values = mapped, {**values, "reason": "forbidden"}
        if status not in action.info.statuses:
            raise RuntimeError(f"{name} returned undeclared status {status!r}")
        uow.commit()
    log.info("action %s -> %s", name, status)
    return ActionResult(status=status, values=values)
