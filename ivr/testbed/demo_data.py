"""Demo data: plans, options, rewards, and subscribers in the situations the lines must handle.

`init_demo(url)` migrates the schema to head and seeds idempotently (an account whose number exists is
left as it is), so it is safe to run at every start. docs/demo-subscribers.md lists who is who; the PINs
here are demo data, documented there on purpose.

Seeding goes through the services where a rule applies (PIN hashing, points ledger, payments), so the demo
data obeys the same invariants as data made by calls. (This is the one place `ivr.db` uses `ivr.services`.)
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ivr.db.migrate import upgrade
from ivr.db.models import (
    Account,
    Charge,
    ContentSubscription,
    LoyaltyCard,
    NumberBlock,
    Option,
    Package,
    Payment,
    Plan,
    Reward,
    Subscriber,
    SubscriberOption,
)
from ivr.db.session import UnitOfWork, make_uow_factory
from ivr.numbering.cards import with_ean13_check_digit
from ivr.services.auth import set_pin
from ivr.services.bonus import grant_points
from ivr.services.common import hash_secret

log = logging.getLogger(__name__)

D = Decimal
ZERO = Decimal("0.00")

PLANS = [
    # code, name, fee, minutes, sms, data_mb, kind, archived
    ("basic", "Базовый", D("300.00"), 300, 100, 5000, "personal", False),
    ("smart", "Смарт", D("550.00"), 600, 300, 20000, "personal", False),
    ("max", "Максимум", D("990.00"), 2000, 1000, 50000, "personal", False),
    ("classic", "Классика", D("200.00"), 200, 50, 1000, "personal", True),
    ("biz_start", "Бизнес Старт", D("700.00"), 1000, 300, 10000, "corporate", False),
    ("biz_pro", "Бизнес Про", D("1200.00"), 3000, 1000, 40000, "corporate", False),
]
OPTIONS = [
    ("who_called", "Кто звонил", D("60.00")),
    ("messengers", "Безлимитные мессенджеры", D("120.00")),
    ("roaming_data", "Интернет в роуминге, 1 гигабайт", D("350.00")),
    ("caller_id", "Определитель номера", D("0.00")),
]
PACKAGES = [
    # code, name, kind, quantity, price, validity days
    ("min100", "100 минут", "minutes", 100, D("150.00"), 30),
    ("sms100", "100 SMS", "sms", 100, D("90.00"), 30),
    ("gb1", "1 гигабайт интернета", "data_mb", 1024, D("200.00"), 30),
    ("gb5", "5 гигабайт интернета", "data_mb", 5120, D("450.00"), 30),
]
REWARDS = [
    # code, name, points, programme, kind, quantity
    ("min100", "100 минут", 500, "mobile", "minutes", 100),
    ("sms50", "50 SMS", 200, "mobile", "sms", 50),
    ("gb1", "1 гигабайт интернета", 550, "mobile", "data_mb", 1024),
    ("coffee", "Кофе в подарок", 300, "loyalty", "voucher", 1),
    ("v200", "Купон на 200 рублей", 1000, "loyalty", "voucher", 1),
    ("v500", "Купон на 500 рублей", 2300, "loyalty", "voucher", 1),
]


@dataclass
class DemoNumber:
    msisdn: str
    pin: str | None
    name: str
    situation: str
    access_level: str = "manage_account"
    plan: str = "smart"
    roaming: bool = False
    web: bool = True
    closed: bool = False
    blocked_days: int = 0
    options: tuple[str, ...] = ()
    subscriptions: tuple[tuple[str, str, Decimal], ...] = ()
    language: str = "ru"
    email: str | None = None  # where a detailed statement goes (example.com: reserved, never delivered)


@dataclass
class DemoAccount:
    number: str
    holder: str
    kind: str
    numbers: list[DemoNumber]
    balance: Decimal = ZERO
    credit_limit: Decimal = ZERO
    trust_credit: bool = False
    corporate: bool = False
    age_days: int = 400
    payments: list[tuple[int, Decimal]] = field(default_factory=list)  # (days ago, amount)
    charges: list[tuple[int, Decimal, str]] = field(default_factory=list)
    enrolled: bool = False
    grants: list[tuple[int, int]] = field(default_factory=list)  # (points, expires in days)
    cards: list[tuple[str, str]] = field(default_factory=list)  # (card number, status)


_CHARGES = [
    (1, D("12.50"), "Звонки"),
    (3, D("35.00"), "Мобильный интернет"),
    (5, D("15.00"), "Гороскоп"),
    (9, D("4.90"), "SMS"),
    (20, D("550.00"), "Абонентская плата"),
    (40, D("550.00"), "Абонентская плата"),
]

DEMO: list[DemoAccount] = [
    DemoAccount(
        "100001",
        "Иван Петров",
        "mobile",
        [
            DemoNumber(
                "79161234567",
                "1234",
                "Иван Петров",
                "positive balance, options and paid subscriptions, bonus points (some expiring soon)",
                email="ivan.petrov@example.com",
                options=("who_called",),
                subscriptions=(
                    ("horoscope", "Гороскоп", D("15.00")),
                    ("ringback", "Мелодия вместо гудка", D("99.00")),
                ),
            )
        ],
        balance=D("523.40"),
        payments=[(2, D("500.00")), (33, D("600.00")), (64, D("600.00"))],
        charges=_CHARGES,
        enrolled=True,
        grants=[(900, 200), (350, 10)],
    ),
    DemoAccount(
        "100002",
        "Мария Соколова",
        "mobile",
        [
            DemoNumber(
                "79161110001",
                "1111",
                "Мария Соколова",
                "negative balance (-123.45), may take a promised payment; no web account",
                plan="basic",
                web=False,
            )
        ],
        balance=D("-123.45"),
        payments=[(45, D("300.00"))],
        charges=_CHARGES[:4],
    ),
    DemoAccount(
        "100003",
        "Олег Кузнецов",
        "mobile",
        [DemoNumber("79161110002", "2222", "Олег Кузнецов", "trust credit on (limit 300), balance -50.00")],
        balance=D("-50.00"),
        credit_limit=D("300.00"),
        trust_credit=True,
        payments=[(10, D("900.00"))],
        charges=_CHARGES[:3],
    ),
    DemoAccount(
        "100004",
        "Елена Морозова",
        "mobile",
        [
            DemoNumber(
                "79161110003",
                "3333",
                "Елена Морозова",
                "in roaming; eligible for trust credit; calls the long-form number",
                plan="max",
                roaming=True,
                options=("roaming_data",),
            )
        ],
        balance=D("1500.00"),
        payments=[(5, D("1000.00")), (35, D("1000.00")), (65, D("1000.00"))],
        charges=_CHARGES[:2],
    ),
    DemoAccount(
        "100005",
        "Сергей Волков",
        "mobile",
        [
            DemoNumber(
                "79161110004",
                "4444",
                "Сергей Волков",
                "number voluntarily blocked for 30 days",
                blocked_days=30,
            )
        ],
        balance=D("210.00"),
        payments=[(20, D("300.00"))],
    ),
    DemoAccount(
        "100006",
        "Наталья Лебедева",
        "mobile",
        [
            DemoNumber(
                "79161110005",
                "8888",
                "Наталья Лебедева",
                "rich bonus account (25 000 points), enough for every reward",
            )
        ],
        balance=D("890.00"),
        payments=[(3, D("1000.00"))],
        enrolled=True,
        grants=[(20000, 300), (5000, 60)],
    ),
    DemoAccount(
        "100007",
        "Павел Новиков",
        "mobile",
        [
            DemoNumber(
                "79161110006", None, "Павел Новиков", "no IVR PIN set (identify works, PIN check says no_pin)"
            )
        ],
        balance=D("100.00"),
        age_days=20,
        payments=[(15, D("100.00"))],
    ),
    DemoAccount(
        "100008",
        "Андрей Зайцев",
        "mobile",
        [DemoNumber("79161110007", "9999", "Андрей Зайцев", "closed number", closed=True)],
        balance=D("0.00"),
    ),
    DemoAccount(
        "200001",
        "ООО «Ромашка»",
        "mobile",
        [
            DemoNumber(
                "79262220001",
                "5555",
                "Ирина Белова",
                "corporate, manage_account (may change everything)",
                plan="biz_pro",
            ),
            DemoNumber(
                "79262220002",
                "6666",
                "Дмитрий Орлов",
                "corporate, view_only (any change is forbidden)",
                access_level="view_only",
                plan="biz_start",
            ),
            DemoNumber(
                "79262220003",
                "7777",
                "Ольга Павлова",
                "corporate, manage_own (own plan/options/block; not the account's money or points)",
                access_level="manage_own",
                plan="biz_start",
            ),
        ],
        balance=D("15400.00"),
        corporate=True,
        payments=[(7, D("20000.00"))],
        charges=[(1, D("1200.00"), "Абонентская плата"), (1, D("700.00"), "Абонентская плата")],
        enrolled=True,
        grants=[(3000, 200)],
    ),
    DemoAccount(
        "300001",
        "Анна Смирнова",
        "loyalty",
        [
            DemoNumber(
                "79031234567", "1234", "Анна Смирнова", "loyalty: 3 cards (one blocked), 3400 points", plan=""
            )
        ],
        enrolled=True,
        grants=[(3000, 180), (400, 20)],
        cards=[
            (with_ean13_check_digit("277000000001"), "active"),
            (with_ean13_check_digit("277000000002"), "active"),
            (with_ean13_check_digit("277000000003"), "blocked"),
        ],
    ),
    DemoAccount(
        "300002",
        "Татьяна Фёдорова",
        "loyalty",
        [
            DemoNumber(
                "79031110001",
                "1111",
                "Татьяна Фёдорова",
                "loyalty: 5 cards (limit reached), 150 points",
                plan="",
            )
        ],
        enrolled=True,
        grants=[(150, 100)],
        cards=[(with_ean13_check_digit(f"2770000001{i:02d}"), "active") for i in range(1, 6)],
    ),
    DemoAccount(
        "300003",
        "Михаил Егоров",
        "loyalty",
        [
            DemoNumber(
                "79031110002",
                "2222",
                "Михаил Егоров",
                "loyalty: registered, no cards, not enrolled yet",
                plan="",
            )
        ],
    ),
]

# Cards printed and handed out at the till but not registered yet: anyone can register them.
FREE_CARDS = [with_ean13_check_digit(f"2770000009{i:02d}") for i in range(1, 6)]


def seed_catalogue(uow: UnitOfWork) -> None:
    for code, name, fee, minutes, sms, data_mb, kind, archived in PLANS:
        if uow.session.scalars(select(Plan).where(Plan.code == code)).first() is None:
            uow.session.add(
                Plan(
                    code=code,
                    name=name,
                    monthly_fee=fee,
                    minutes=minutes,
                    sms=sms,
                    data_mb=data_mb,
                    kind=kind,
                    archived=archived,
                )
            )
    for sort, (code, name, price) in enumerate(OPTIONS):
        if uow.session.scalars(select(Option).where(Option.code == code)).first() is None:
            uow.session.add(Option(code=code, name=name, price=price, sort=sort))
    for sort, (code, name, kind, quantity, price, days) in enumerate(PACKAGES):
        if uow.session.scalars(select(Package).where(Package.code == code)).first() is None:
            uow.session.add(
                Package(
                    code=code,
                    name=name,
                    kind=kind,
                    quantity=quantity,
                    price=price,
                    validity_days=days,
                    sort=sort,
                )
            )
    for sort, (code, name, points, programme, kind, quantity) in enumerate(REWARDS):
        if uow.session.scalars(select(Reward).where(Reward.code == code)).first() is None:
            uow.session.add(
                Reward(
                    code=code,
                    name=name,
                    points=points,
                    programme=programme,
                    kind=kind,
                    quantity=quantity,
                    sort=sort,
                )
            )
    for number in FREE_CARDS:
        if uow.session.scalars(select(LoyaltyCard).where(LoyaltyCard.number == number)).first() is None:
            uow.session.add(LoyaltyCard(number=number, status="active"))
    uow.session.flush()


def seed_account(uow: UnitOfWork, demo: DemoAccount) -> bool:
    """Create one demo account with its numbers. False when it exists already."""

    if uow.session.scalars(select(Account).where(Account.number == demo.number)).first() is not None:
        return False
    now = uow.now()
    today = now.date()
    account = Account(
        number=demo.number,
        kind=demo.kind,
        holder=demo.holder,
        corporate=demo.corporate,
        created_at=now - dt.timedelta(days=demo.age_days),
        balance=demo.balance,
        credit_limit=demo.credit_limit,
        trust_credit=demo.trust_credit,
        next_billing_date=(today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        if demo.kind == "mobile"
        else None,
        bonus_enrolled_at=now - dt.timedelta(days=demo.age_days) if demo.enrolled else None,
        points=0,
        version=0,
    )
    uow.session.add(account)
    uow.session.flush()
    plans = {p.code: p for p in uow.session.scalars(select(Plan)).all()}
    options = {o.code: o for o in uow.session.scalars(select(Option)).all()}
    for number in demo.numbers:
        plan = plans.get(number.plan)
        sub = Subscriber(
            msisdn=number.msisdn,
            account_id=account.id,
            name=number.name,
            status="closed" if number.closed else "active",
            access_level=number.access_level,
            language=number.language,
            roaming=number.roaming,
            plan_id=plan.id if plan else None,
            minutes_left=plan.minutes // 2 if plan else 0,
            sms_left=plan.sms // 2 if plan else 0,
            data_mb_left=plan.data_mb // 3 if plan else 0,
            web_enabled=number.web,
            email=number.email,
            # Nobody knows this one: the subscriber gets a real password by a reset.
            web_password_hash=hash_secret(f"demo-{number.msisdn}-unused") if number.web else None,
        )
        uow.session.add(sub)
        uow.session.flush()
        if number.pin:
            set_pin(uow, sub.id, number.pin)
        for code in number.options:
            uow.session.add(
                SubscriberOption(
                    subscriber_id=sub.id, option_id=options[code].id, active=True, changed_at=now
                )
            )
        for code, name, price in number.subscriptions:
            uow.session.add(
                ContentSubscription(
                    subscriber_id=sub.id,
                    code=code,
                    name=name,
                    price=price,
                    started_at=now - dt.timedelta(days=60),
                )
            )
        if number.blocked_days:
            uow.session.add(
                NumberBlock(
                    subscriber_id=sub.id,
                    starts_at=now - dt.timedelta(days=1),
                    ends_at=now + dt.timedelta(days=number.blocked_days - 1),
                )
            )

    for days, amount in demo.payments:
        uow.session.add(
            Payment(
                account_id=account.id, amount=amount, kind="card", created_at=now - dt.timedelta(days=days)
            )
        )
    first = uow.session.scalars(select(Subscriber).where(Subscriber.account_id == account.id)).first()
    for days, amount, title in demo.charges:
        uow.session.add(
            Charge(
                account_id=account.id,
                subscriber_id=first.id if first else None,
                amount=amount,
                title=title,
                created_at=now - dt.timedelta(days=days, hours=2),
            )
        )
    for points, expires_in in demo.grants:
        grant_points(uow, account.id, points, expires_at=now + dt.timedelta(days=expires_in), note="demo")
    for card_number, status in demo.cards:
        uow.session.add(
            LoyaltyCard(
                number=card_number,
                account_id=account.id,
                status=status,
                registered_at=now - dt.timedelta(days=100),
                blocked_at=now - dt.timedelta(days=2) if status == "blocked" else None,
            )
        )
    uow.session.flush()
    return True


def seed(uow: UnitOfWork) -> int:
    """Seed everything missing. Returns the number of accounts created."""
    seed_catalogue(uow)
    created = sum(1 for demo in DEMO if seed_account(uow, demo))
    log.info("demo data: %d accounts created, %d already there", created, len(DEMO) - created)
    return created


def init_demo(url: str) -> int:
    """Create or migrate the schema, then seed the demo data (idempotent). Returns accounts created."""

    upgrade(url)
    factory = make_uow_factory(url)
    try:
        for attempt in (1, 2):
            try:
                with factory(write=True) as uow:
                    created = seed(uow)
                    uow.commit()
                return created
            except IntegrityError:
                # Another process (server and simulator starting together) seeded the same rows first;
                # the second pass finds them and adds only what is still missing.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
    finally:
        factory.dispose()
