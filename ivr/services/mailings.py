"""The loyalty programme's mailings: the holder's consent to offers by SMS and by e-mail.

The caller hears the current choice and changes it. E-mail mailings need an e-mail address on file
(`no_email` otherwise); SMS ones go to the account holder's number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ivr.db.session import UnitOfWork
from ivr.services.common import NO_ORIGIN, Origin, audit, load_subscriber, lock_account, once

log = logging.getLogger(__name__)

CHANNELS = ("sms", "email")


@dataclass(frozen=True)
class MailingChoice:
    status: str  # ok
    mailing_sms: bool = False
    mailing_email: bool = False


@dataclass(frozen=True)
class MailingChange:
    status: str  # ok | already | no_email | invalid_channel
    channel: str | None = None
    on: bool | None = None


def mailing_choice(uow: UnitOfWork, subscriber_id: int) -> MailingChoice:
    account = load_subscriber(uow, subscriber_id).account
    return MailingChoice(status="ok", mailing_sms=account.mailing_sms, mailing_email=account.mailing_email)


def set_mailing(
    uow: UnitOfWork,
    subscriber_id: int,
    channel: str,
    on: bool,
    *,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> MailingChange:
    def run() -> MailingChange:
        if channel not in CHANNELS:
            return MailingChange(status="invalid_channel")
        sub = load_subscriber(uow, subscriber_id)
        account = lock_account(uow, sub.account_id)
        current = account.mailing_sms if channel == "sms" else account.mailing_email
        if current == on:
            return MailingChange(status="already", channel=channel, on=on)
        if channel == "email" and on and not sub.email:
            return MailingChange(status="no_email", channel=channel, on=on)
        if channel == "sms":
            account.mailing_sms = on
        else:
            account.mailing_email = on
        audit(uow, origin, "mailing.set", account_id=account.id, subscriber_id=sub.id, channel=channel, on=on)
        return MailingChange(status="ok", channel=channel, on=on)

    return once(uow, key, "mailing.set", MailingChange, run)
