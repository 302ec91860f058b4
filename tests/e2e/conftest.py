"""The real line for e2e tests: the project-local Asterisk and `ivr serve`, started once per test session.

Each session gets a temporary var dir (IVR_VAR_DIR) with a fresh SQLite database seeded with the demo data
(`ivr db init`), its own loopback ports (SIP, AMI, FastAGI, RTP) and its own AMI secret. Prompt audio is the
project's rendered audio (var/sounds, rendered by `ivr prompts render` if missing). Without Asterisk or
sipp the tests skip with the reason, unless CI is set: then they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from e2e_stack import LineStack, free_port

from ivr.config import PROJECT_ROOT, load_settings
from ivr.telephony import asterisk

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing_pieces() -> list[str]:
    missing = []
    if shutil.which("sipp") is None:
        missing.append("sipp (Debian package sip-tester)")
    if not asterisk.installed(load_settings()):
        missing.append("Asterisk (scripts/install_asterisk.sh)")
    return missing


@pytest.fixture(scope="session")
def line_stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LineStack]:
    missing = _missing_pieces()
    if missing:
        reason = "e2e needs " + " and ".join(missing) + "; run scripts/setup.sh"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    var = tmp_path_factory.mktemp("e2e") / "var"
    (var / "log").mkdir(parents=True)
    base = load_settings()
    env = dict(os.environ)
    env.update(
        {
            "IVR_HOME": str(PROJECT_ROOT),
            "IVR_VAR_DIR": str(var),
            "IVR_DATABASE_URL": f"sqlite:///{var / 'ivr.sqlite3'}",
            "IVR_SOUNDS_DIR": str(base.sounds),
            "IVR_AGI_PORT": str(free_port()),
            "IVR_AMI_PORT": str(free_port()),
            "IVR_SIP_PORT": str(free_port(udp=True)),
            "IVR_AMI_SECRET": secrets.token_hex(16),
            "IVR_RTP_START": str(31000 + (os.getpid() % 50) * 20),
            "IVR_ASTERISK_ROOT": str(asterisk.asterisk_paths(base).root),
            "IVR_ASTERISK_ETC": str(var / "asterisk" / "etc"),
            "IVR_LOG_LEVEL": "INFO",
        }
    )
    run = {
        "env": env,
        "cwd": PROJECT_ROOT,
        "check": True,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
    }
    if not any(base.sounds.glob("ru/operator/*.wav")):
        subprocess.run([sys.executable, "-m", "ivr.cli", "prompts", "render", "--no-progress"], **run)
    subprocess.run([sys.executable, "-m", "ivr.cli", "db", "init"], **run)

    saved = dict(os.environ)
    os.environ.update(env)  # so load_settings() here sees the same settings as the servers
    try:
        settings = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    stack = LineStack(settings=settings, env=env, var=var)
    _pid, stack.boot_seconds = asterisk.start(settings, env=env)
    try:
        stack.start_server()
        yield stack
    finally:
        stack.stop_server()
        asterisk.stop(settings)
        if request.config.getoption("--keep-e2e-var"):
            print(f"\ne2e var dir kept: {var}")
