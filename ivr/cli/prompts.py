"""`ivr prompts ...`: render audio, check it, and show support staff how a value is worded.

ivr prompts render [LINE] [--lang L] [--engine auto|rhvoice|espeak|gtts] [--force] [--jobs N]
ivr prompts check                      exit 1 when a text has a bad placeholder or stale/missing audio
ivr prompts prune [--grace SECONDS]    delete prompt audio no text has used for the grace period
ivr prompts say --lang ru money 123.45 prints the words (and, with --files, the files played)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ivr.config import Settings


def register(subparsers: Any) -> None:
    prompts = subparsers.add_parser("prompts", help="render and check prompt audio; show wording")
    sub = prompts.add_subparsers(dest="prompts_command", metavar="ACTION")
    sub.required = True

    render = sub.add_parser("render", help="render texts and the values vocabulary to 8 kHz WAV")
    render.add_argument("line", nargs="?", help="one line (default: every line)")
    render.add_argument("--lang", action="append", help="language (repeatable; default: all with texts)")
    render.add_argument("--engine", help="auto (default), rhvoice, espeak or gtts")
    render.add_argument("--force", action="store_true", help="render again even when unchanged")
    render.add_argument("--jobs", type=int, default=None, help="parallel workers (default: one per core)")
    render.add_argument(
        "--voice", action="append", default=[], metavar="LANG=VOICE", help="engine voice per language"
    )
    render.add_argument("--names-file", help="plan/reward names to render too, one per line")
    render.add_argument(
        "--db-names",
        action="store_true",
        help="also render the names of plans, options, subscriptions, rewards and charges in the database",
    )
    render.add_argument("--no-progress", action="store_true", help="no progress bar")
    render.set_defaults(func=cmd_render)

    check = sub.add_parser("check", help="check texts and rendered audio of every line")
    check.set_defaults(func=cmd_check)

    prune = sub.add_parser(
        "prune",
        help="delete the audio of text versions no longer used, once unused for the grace period "
        "(render does this too)",
    )
    prune.add_argument(
        "--grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a file stays after its text changed (default 3600: longer than any call)",
    )
    prune.set_defaults(func=cmd_prune)

    listing = sub.add_parser("list", help="list prompt texts: key, text (and whether audio is rendered)")
    listing.add_argument("line", nargs="?", help="one line (default: every line and the common texts)")
    listing.add_argument("--lang", default=None, help="one language (default: all)")
    listing.set_defaults(func=cmd_list)

    say = sub.add_parser("say", help="show how a value is said, e.g. `say --lang ru money 123.45`")
    say.add_argument("--lang", default=None, help="language (default: the default language)")
    say.add_argument("--files", action="store_true", help="also list the word files played")
    say.add_argument(
        "--wav", metavar="OUT", help="write the rendered words joined into one WAV, to listen to"
    )
    say.add_argument(
        "kind", help="money, points, minutes, sms, megabytes, gigabytes, days, number, date, phone, digits"
    )
    say.add_argument("value")
    say.set_defaults(func=cmd_say)


def cmd_render(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.prompts.render import RenderError, render

    voices = {}
    for spec in args.voice:
        lang, _, voice = spec.partition("=")
        if not voice:
            print(f"--voice wants LANG=VOICE, got {spec!r}", file=sys.stderr)
            return 2
        voices[lang] = voice
    names: list[str] = []
    if args.names_file:
        with open(args.names_file, encoding="utf-8") as fh:
            names = [line.strip() for line in fh if line.strip()]
    if args.db_names:
        names += database_names(settings)
    try:
        report = render(
            settings,
            args.line,
            langs=args.lang,
            engine=args.engine,
            force=args.force,
            workers=args.jobs,
            progress=not args.no_progress,
            voices=voices or None,
            names=names,
        )
    except (RenderError, ValueError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    for rel, error in report.failed:
        print(f"  failed {rel}: {error}", file=sys.stderr)
    return 1 if report.failed else 0


def database_names(settings: Settings) -> list[str]:
    """Names from the configured database (entry-point wiring: the prompts layer itself never imports
    the database)."""
    from ivr.db.session import make_uow_factory
    from ivr.services.catalogue import spoken_names

    factory = make_uow_factory(settings.db_url)
    try:
        with factory() as uow:
            return spoken_names(uow)
    finally:
        factory.dispose()


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.prompts.render import check_all

    problems = check_all(settings)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_prune(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.prompts.render import PRUNE_GRACE_SECONDS, prune_prompts

    report = prune_prompts(settings, grace=PRUNE_GRACE_SECONDS if args.grace is None else args.grace)
    for rel in report.deleted:
        print(f"deleted {rel}")
    print(
        f"{len(report.deleted)} deleted, {len(report.waiting)} unused and kept until their grace period ends"
    )
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.prompts.voice import COMMON, PromptVoice, parse_template, piece_file

    voice = PromptVoice(settings)
    sources = [args.line] if args.line else [*voice.lines(), COMMON]
    for source in sources:
        for lang in voice.languages(None if source == COMMON else source):
            if args.lang and lang != args.lang:
                continue
            for key in voice.keys(source, lang):
                text = voice.raw_text(source, lang, key) or ""
                pieces = parse_template(key, text, lang, source).static_pieces()
                rendered = all(
                    (settings.sounds / lang / source / piece_file(stem, piece)).is_file()
                    for stem, piece in pieces
                )
                print(f"{source}.{lang}\t{key}\t{'ok ' if rendered else 'NO '}\t{text}")
    return 0


def cmd_say(settings: Settings, args: argparse.Namespace) -> int:
    from decimal import Decimal, InvalidOperation

    from ivr.prompts.voice import WORDING, NameToken, name_slug, say, slug

    lang = args.lang or settings.default_language
    value: Any = args.value
    if args.kind == "money":
        try:
            value = Decimal(args.value)
        except InvalidOperation:
            print(f"not an amount: {args.value!r}", file=sys.stderr)
            return 2
    try:
        words = say(lang, args.kind, value)
    except (ValueError, TypeError) as exc:
        print(f"say: {exc}", file=sys.stderr)
        return 2
    print(WORDING[lang].join(words))
    paths = [
        settings.sounds / lang / "words" / f"{name_slug(w) if isinstance(w, NameToken) else slug(w)}.wav"
        for w in words
    ]
    if args.files:
        for path in paths:
            print(f"  {path}")
    if args.wav:
        missing = [p for p in paths if not p.is_file()]
        if missing:
            print(f"not rendered: {missing[0]} (run `ivr prompts render`)", file=sys.stderr)
            return 1
        join_wavs(paths, args.wav)
        print(f"wrote {args.wav}")
    return 0


def join_wavs(paths: list[Any], out: str) -> None:
    """Concatenate telephone WAVs (same format) into one file, as Asterisk would play them in a row."""
    import wave

    with wave.open(out, "wb") as sink:
        for i, path in enumerate(paths):
            with wave.open(str(path), "rb") as src:
                if i == 0:
                    sink.setparams(src.getparams())
                sink.writeframes(src.readframes(src.getnframes()))
