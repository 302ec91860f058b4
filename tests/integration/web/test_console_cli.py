"""`ivr staff` and `ivr web` as processes: the password is never printed, and the console says where it
listens (loopback by default) and serves its login page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ivr.config import PROJECT_ROOT
from ivr.db.migrate import upgrade
from ivr.db.session import make_uow_factory
from ivr.services import staff
from ivr.testbed.localline import free_port

PASSWORD = "a password nobody sees"


def env_for(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'console.sqlite3'}"
    upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env.update({"IVR_HOME": str(PROJECT_ROOT), "IVR_VAR_DIR": str(tmp_path / "var"), "IVR_DATABASE_URL": url})
    return env


def ivr(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ivr.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_staff_add_never_prints_the_password(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    done = ivr(env, "staff", "add", "anna", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert "added anna as admin" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    assert ivr(env, "staff", "add", "anna", "--password-stdin", stdin=PASSWORD + "\n").returncode == 1
    short = ivr(env, "staff", "add", "boris", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "10 characters" in short.stderr and "short\n" not in short.stdout
    listed = ivr(env, "staff", "list")
    assert "anna" in listed.stdout and "admin" in listed.stdout and PASSWORD not in listed.stdout
    factory = make_uow_factory(env["IVR_DATABASE_URL"])
    with factory(write=True) as uow:
        assert staff.login(uow, "anna", PASSWORD) == staff.Staff("anna", "admin")
        uow.commit()
    factory.dispose()
    assert ivr(env, "staff", "disable", "anna").returncode == 0
    assert "disabled" in ivr(env, "staff", "list").stdout


def test_ivr_web_says_where_it_listens_and_serves_the_login_page(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    port = free_port()
    env["IVR_WEB_PORT"] = str(port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "web"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"staff console on http://127.0.0.1:{port}/" in first, first
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as page:
                    assert page.status == 200 and b'id="login"' in page.read()
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the console did not answer"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
