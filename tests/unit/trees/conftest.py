"""A test-local action catalog: the action table of docs/contracts.md, written out by hand."""

from __future__ import annotations

import pytest

from ivr.engine.actions import ActionCatalog, ActionInfo

# name: (statuses without "error", changes state, args, values)
CONTRACT_TABLE: dict[str, tuple[str, bool, str, str]] = {
    "subscriber.identify": (
        "found unknown closed",
        False,
        "number",
        "subscriber_id account_id access_level msisdn pin_set",
    ),
    "subscriber.verify_pin": (
        "ok wrong locked unknown no_pin throttled",
        False,
        "number pin",
        "subscriber_id attempts_left locked_until locked_minutes",
    ),
    "otp.send": ("ok throttled no_phone", False, "purpose", "sms_to valid_minutes"),
    "otp.verify": (
        "ok wrong expired exhausted throttled",
        False,
        "code purpose",
        "otp_verified pin_unlocked attempts_left",
    ),
    "pin.change": ("ok mismatch weak invalid not_allowed", True, "pin pin_repeat", ""),
    "balance.report": (
        "ok",
        False,
        "",
        "balance credit_limit available minutes_left sms_left data_mb_left bonus_points charges payments",
    ),
    "payment.promise": ("ok not_eligible already_active", True, "", "amount until"),
    "credit.trust_enable": ("ok not_eligible already_active", True, "", "credit_limit"),
    "password.reset": ("ok limit_reached no_web_account", True, "", "sms_to"),
    "web.register": ("ok already_registered", True, "", "sms_to login"),
    "package.list": ("ok none", False, "", "packages packages_count"),
    "card.delete": ("ok last_card unknown_card", True, "card_key", "card_last4"),
    "mailing.status": ("ok", False, "", "mailing_sms mailing_email"),
    "programme.leave_info": ("ok already_left", False, "", "leave_points leave_cards"),
    "programme.join_start": (
        "ok already_member number_taken invalid_number",
        False,
        "number",
        "subscriber_id",
    ),
    "programme.join": ("ok already_member", True, "", "account_id card_id card_last4"),
    "programme.leave": ("ok redemption_pending already_left", True, "", "points_lost cards_closed"),
    "mailing.set": ("ok already no_email invalid_channel", True, "channel on", "mailing_channel mailing_on"),
    "statement.order": (
        "ok too_soon invalid_period",
        False,
        "period",
        "channel expect_minutes charges_count total wait_minutes",
    ),
    "package.buy": (
        "ok insufficient_funds unknown_package forbidden",
        True,
        "package_key package_code",
        "package_name price expires",
    ),
    "tariff.current": ("ok", False, "", "plan_code plan_name monthly_fee next_billing_date"),
    "tariff.alternatives": ("ok none", False, "", "plans"),
    "tariff.change": (
        "ok not_eligible same_plan insufficient_funds unknown_plan forbidden",
        True,
        "plan_key plan_code when",
        "plan_name effective_date fee",
    ),
    "options.list": ("ok none", False, "", "options"),
    "options.set": (
        "ok already unknown_option insufficient_funds forbidden",
        True,
        "option_key option_code on",
        "option_name price",
    ),
    "subscriptions.list": ("ok none", False, "", "subscriptions"),
    "subscriptions.cancel": (
        "ok unknown_subscription forbidden",
        True,
        "subscription_key subscription_code",
        "subscription_name",
    ),
    "number.block": ("ok already_blocked invalid_days forbidden", True, "days", "until"),
    "number.unblock": ("ok not_blocked forbidden", True, "", ""),
    "bonus.balance": ("ok not_enrolled", False, "", "points expiring_points expiry_date"),
    "bonus.enrol": ("ok already_enrolled", True, "", ""),
    "bonus.catalogue": ("ok none", False, "", "rewards"),
    "bonus.redeem": (
        "ok insufficient_points unknown_reward not_enrolled",
        True,
        "reward_key reward_code",
        "reward_name points_left",
    ),
    "bonus.transfer": (
        "ok insufficient_points unknown_recipient invalid_amount not_enrolled",
        True,
        "to_number points",
        "points_left",
    ),
    "card.identify": (
        "found unknown blocked",
        False,
        "card_number number",
        "card_id account_id subscriber_id card_last4",
    ),
    "card.list": ("ok none", False, "", "cards count"),
    "card.register": (
        "ok invalid_number limit_reached already_registered taken",
        True,
        "card_number",
        "card_last4 count",
    ),
    "card.block": ("ok already_blocked unknown_card", True, "card_key", "card_last4"),
    "card.unblock": ("ok not_blocked unknown_card", True, "card_key", "card_last4"),
    "card.reissue": ("ok not_blocked unknown_card", True, "card_key", "new_card_last4"),
    "loyalty.balance": ("ok not_enrolled", False, "", "points expiring_points expiry_date"),
}


def contract_catalog() -> dict[str, ActionInfo]:
    return {
        name: ActionInfo(
            name,
            frozenset([*statuses.split(), "error"]),
            changes,
            frozenset(args.split()),
            frozenset(values.split()),
        )
        for name, (statuses, changes, args, values) in CONTRACT_TABLE.items()
    }


@pytest.fixture
def catalog() -> ActionCatalog:
    return contract_catalog()
