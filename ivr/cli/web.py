"""CLI: `ivr web` (the staff console) and `ivr staff add|list|passwd|role|disable|enable` (its accounts).

A password is read from the terminal (asked twice) or, with --password-stdin, from the first line of
standard input; it is never an argument (arguments show in `ps` and shell history), never printed, never
logged."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from ivr.config import Settings


def register(sub: Any) -> None:
    w = sub.add_parser("web", help="run the staff console (loopback by default)")
    w.add_argument("--host", default=None, help="address to bind (default: web_host, 127.0.0.1)")
    w.add_argument("--port", type=int, default=None, help="port (default: web_port, 8480)")
    w.set_defaults(func=cmd_web)

    s = sub.add_parser("staff", help="staff console accounts")
    ssub = s.add_subparsers(dest="staff_command", metavar="STAFF_COMMAND")
    ssub.required = True
    add = ssub.add_parser("add", help="add an account (the first one: --role admin)")
    add.add_argument("username")
    add.add_argument("--role", default="viewer", choices=("viewer", "editor", "publisher", "admin"))
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=cmd_staff_add)
    lst = ssub.add_parser("list", help="list the accounts")
    lst.set_defaults(func=cmd_staff_list)
    pw = ssub.add_parser("passwd", help="set an account's password (unlocks it)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=cmd_staff_passwd)
    role = ssub.add_parser("role", help="set an account's role")
    role.add_argument("username")
    role.add_argument("role", choices=("viewer", "editor", "publisher", "admin"))
    role.set_defaults(func=cmd_staff_role)
    for name in ("disable", "enable"):
        p = ssub.add_parser(name, help=f"{name} an account")
        p.add_argument("username")
        p.set_defaults(func=cmd_staff_disable, disable=name == "disable")


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from ivr.app.bootstrap import check_schema
    from ivr.web.app import create_app

    check_schema(settings.db_url)
    host = args.host or settings.web_host
    port = args.port or settings.web_port
    app = create_app(settings)
    print(
        f"staff console on http://{host}:{port}/ (first account: ivr staff add NAME --role admin)", flush=True
    )
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, proxy_headers=False)
    uvicorn.Server(config).run()
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("the two passwords differ")
    return first


def _run(settings: Settings, operation: Any) -> int:
    from ivr.db.session import make_uow_factory
    from ivr.services.staff import StaffError

    factory = make_uow_factory(settings.db_url)
    try:
        with factory(write=True) as uow:
            message = operation(uow)
            uow.commit()
    except StaffError as exc:
        print(f"ivr staff: {exc}", file=sys.stderr)
        return 1
    finally:
        factory.dispose()
    if message:
        print(message)
    return 0


def cmd_staff_add(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.services.staff import add_staff

    password = _password(args)
    return _run(
        settings,
        lambda uow: f"added {add_staff(uow, args.username, password, args.role).username} as {args.role}",
    )


def cmd_staff_passwd(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.services.staff import set_password

    password = _password(args)

    def run(uow: Any) -> str:
        set_password(uow, args.username, password, by="cli")
        return f"password of {args.username} set"

    return _run(settings, run)


def cmd_staff_role(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.services.staff import set_role

    def run(uow: Any) -> str:
        set_role(uow, args.username, args.role, by="cli")
        return f"{args.username} is {args.role}"

    return _run(settings, run)


def cmd_staff_disable(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.services.staff import set_disabled

    def run(uow: Any) -> str:
        set_disabled(uow, args.username, args.disable, by="cli")
        return f"{args.username} {'disabled' if args.disable else 'enabled'}"

    return _run(settings, run)


def cmd_staff_list(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.services.staff import list_staff

    def show(uow: Any) -> str:
        rows = list_staff(uow)
        return (
            "\n".join(f"{u.username:20} {u.role:10} {'disabled' if u.disabled else 'active'}" for u in rows)
            or "no accounts (ivr staff add NAME --role admin)"
        )

    return _run(settings, show)
