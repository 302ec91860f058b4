"""`ivr db init|migrate|downgrade|seed|subscribers`: the database from the command line."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ivr.config import Settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="database: schema migrations and demo data")
    sub = parser.add_subparsers(dest="db_command", metavar="DB_COMMAND")
    sub.required = True

    p = sub.add_parser("init", help="migrate to the newest schema and seed the demo data (idempotent)")
    p.set_defaults(func=_init)
    p = sub.add_parser("migrate", help="migrate the schema up (default: to the newest revision)")
    p.add_argument("revision", nargs="?", default="head")
    p.set_defaults(func=_migrate)
    p = sub.add_parser("downgrade", help="migrate the schema down one step (or to REV; 'base' empties it)")
    p.add_argument("revision", nargs="?", default="-1")
    p.set_defaults(func=_downgrade)
    p = sub.add_parser("seed", help="add the demo data that is missing")
    p.set_defaults(func=_seed)
    p = sub.add_parser("subscribers", help="list the subscribers (numbers, situations; no secrets)")
    p.set_defaults(func=_subscribers)
    p = sub.add_parser(
        "jobs",
        help="run the billing jobs once: deliver queued SMS, expire points, settle promises, apply plans",
    )
    p.set_defaults(func=_jobs)


def _ensure_dir(settings: Settings) -> None:
    if settings.db_url.startswith("sqlite"):
        settings.var.mkdir(parents=True, exist_ok=True)


def _init(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.testbed.demo_data import init_demo

    _ensure_dir(settings)
    created = init_demo(settings.db_url)
    print(f"database ready; {created} demo accounts created")
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.db.migrate import current_revision, upgrade

    _ensure_dir(settings)
    upgrade(settings.db_url, args.revision)
    print(f"schema at {current_revision(settings.db_url)}")
    return 0


def _downgrade(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.db.migrate import current_revision, downgrade

    downgrade(settings.db_url, args.revision)
    print(f"schema at {current_revision(settings.db_url)}")
    return 0


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.db.session import make_uow_factory
    from ivr.testbed.demo_data import seed

    factory = make_uow_factory(settings.db_url)
    try:
        with factory(write=True) as uow:
            created = seed(uow)
            uow.commit()
    finally:
        factory.dispose()
    print(f"{created} demo accounts created")
    return 0


def _subscribers(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from ivr.db.models import Subscriber
    from ivr.db.session import make_uow_factory
    from ivr.services.blocking import active_block
    from ivr.testbed.demo_data import DEMO

    situations = {n.msisdn: n.situation for a in DEMO for n in a.numbers}
    factory = make_uow_factory(settings.db_url)
    try:
        with factory() as uow:
            subs = uow.session.scalars(select(Subscriber).order_by(Subscriber.msisdn)).all()
            print(
                f"{'number':<12} {'line':<8} {'access':<15} {'balance':>10} {'points':>7}  state / situation"
            )
            for sub in subs:
                account = sub.account
                state = sub.status
                if active_block(uow, sub.id) is not None:
                    state = "blocked"
                line = "operator" if account.kind == "mobile" else "loyalty"
                print(
                    f"{sub.msisdn:<12} {line:<8} {sub.access_level:<15} {account.balance:>10} "
                    f"{account.points:>7}  {state}; {situations.get(sub.msisdn, '')}"
                )
    finally:
        factory.dispose()
    return 0


def _jobs(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.app.sms import (
        deliver_pending,
        deliver_pending_mail,
        mail_sender_from_settings,
        sender_from_settings,
    )
    from ivr.db.session import make_uow_factory
    from ivr.services import balance, bonus, otp, tariffs

    factory = make_uow_factory(settings.db_url)
    try:
        with factory(write=True) as uow:
            expired = bonus.expire_all(uow)
            settled = balance.settle_overdue_promises(uow)
            switched = tariffs.apply_pending_plans(uow)
            uow.commit()
        sent = deliver_pending(factory, sender_from_settings(settings))
        mailed = deliver_pending_mail(factory, mail_sender_from_settings(settings))
        with factory(write=True) as uow:
            otp.scrub_delivered(uow)  # one-time codes no longer usable leave the outbox
            uow.commit()
    finally:
        factory.dispose()
    print(
        f"{sent} SMS and {mailed} e-mails sent, {expired} points expired, "
        f"{settled} promised payments settled, {switched} plans applied"
    )
    return 0
