#!/usr/bin/env python3
"""Benchmark the prompts part: wording and PromptVoice.files()/text() latency per call (what a live call
pays), and render time per prompt per TTS engine (what setup pays). Prints a Markdown table.

    .venv/bin/python scripts/bench_prompts.py [--engines espeak,rhvoice] [--render-count 60]

Uses a temporary copy of prompts/ so the project's var/sounds is not touched.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.config import Settings  # noqa: E402
from ivr.engine.commands import PromptRef  # noqa: E402
from ivr.prompts.render import plan_prompts, plan_words, render_jobs, wav_info  # noqa: E402
from ivr.prompts.tts import get_engine  # noqa: E402
from ivr.prompts.voice import PromptVoice, say  # noqa: E402


def per_call_us(fn: Callable[[], object], number: int = 2000, repeat: int = 5) -> tuple[float, float]:
    """(median, best) microseconds per call."""
    runs = [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=repeat)]
    return statistics.median(runs), min(runs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", default="espeak,rhvoice")
    parser.add_argument("--render-count", type=int, default=60, help="files rendered per engine")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-prompts-") as tmp:
        home = Path(tmp)
        shutil.copytree(ROOT / "prompts", home / "prompts")
        settings = Settings(home=home)
        voice = PromptVoice(settings)
        line = "operator" if "operator" in voice.lines() else (voice.lines() or ["demo"])[0]
        money_key = next((k for k in ("balance_is",) if voice.has(line, "ru", k)), None)

        print("### Latency per call (no I/O; median of 5 runs x 2000 calls)\n")
        print("| operation | median µs | best µs |")
        print("|---|---:|---:|")
        cases: list[tuple[str, Callable[[], object]]] = [
            ("say ru money -1234.56", lambda: say("ru", "money", Decimal("-1234.56"))),
            ("say en money -1234.56", lambda: say("en", "money", Decimal("-1234.56"))),
            ("say ru money 999999999.99", lambda: say("ru", "money", Decimal("999999999.99"))),
            ("say ru date", lambda: say("ru", "date", "2026-12-25")),
            ("say ru phone 79221110505", lambda: say("ru", "phone", "79221110505")),
            ("say ru points 21", lambda: say("ru", "points", 21)),
        ]
        if money_key:
            ref = PromptRef(money_key, {"balance": Decimal("-1234.56"), "available": Decimal("100.05")})
            cases += [
                (
                    f"PromptVoice.files({line}, ru, {money_key}: two amounts)",
                    lambda: voice.files(line, "ru", ref),
                ),
                (f"PromptVoice.text({line}, ru, {money_key})", lambda: voice.text(line, "ru", ref)),
            ]
        static = PromptRef("goodbye")
        cases.append(
            (
                f"PromptVoice.files({line}, ru, goodbye) (static, cached)",
                lambda: voice.files(line, "ru", static),
            )
        )
        cases.append(("PromptVoice.reload_if_changed() (stat of text files)", voice.reload_if_changed))
        for name, fn in cases:
            med, best = per_call_us(fn)
            print(f"| {name} | {med:.1f} | {best:.1f} |")

        started = time.perf_counter()
        PromptVoice(settings)
        print(
            f"\nPromptVoice(settings) load: {(time.perf_counter() - started) * 1000:.1f} ms "
            f"({len(voice.lines())} lines)\n"
        )

        jobs_all = plan_prompts(voice, voice.lines(), ["ru"]) + plan_words(["ru"])
        prompts_only = [j for j in jobs_all if j.kind == "prompt"][: args.render_count // 2]
        words_only = [j for j in jobs_all if j.kind == "word"][: args.render_count - len(prompts_only)]
        sample = prompts_only + words_only
        print(
            f"### Render time per file (Russian; {len(prompts_only)} prompt pieces + "
            f"{len(words_only)} words, 2 workers, includes resample/trim/normalise)\n"
        )
        print("| engine | files | wall s | ms per file | audio s | render s per audio s |")
        print("|---|---:|---:|---:|---:|---:|")
        for engine_name in [e.strip() for e in args.engines.split(",") if e.strip()]:
            engine = get_engine(engine_name)
            if not engine.available():
                print(f"| {engine_name} | not installed | | | | |")
                continue
            out = Settings(home=home, var_dir=home / f"var-{engine_name}")
            report = render_jobs(out, list(sample), engine=engine_name, progress=False, force=True)
            audio = sum(wav_info(out.sounds / j.rel)[3] for j in sample if (out.sounds / j.rel).is_file())
            per = report.seconds / max(1, report.rendered) * 1000
            rtf = report.seconds / audio if audio else 0.0
            print(
                f"| {engine_name} | {report.rendered} | {report.seconds:.2f} | {per:.0f} "
                f"| {audio:.1f} | {rtf:.3f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
