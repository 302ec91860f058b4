"""The systemd units and the logrotate rule, as scripts/install_units.sh installs them: every mark filled,
accepted by systemd's own checker and by logrotate, with the start order, the restart policies and the
stop timeout the upgrade procedure relies on (docs/operations.md, Running under systemd)."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ivr.config import PROJECT_ROOT

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("units")
    subprocess.run(
        [
            "bash",
            "scripts/install_units.sh",
            "--dest",
            str(dest),
            "--user",
            getpass.getuser(),
            "--grace",
            "40",
        ],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    return dest


def unit(dest: Path, name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for row in (dest / name).read_text().splitlines():
        if "=" in row and not row.startswith("#"):
            key, _, value = row.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_every_mark_is_filled_with_this_checkout(installed: Path) -> None:
    for name in ("ivr-asterisk.service", "ivr-serve@.service", "ivr-web.service", "ivr"):
        text = (installed / name).read_text()
        assert re.search(r"@@[A-Z_]+@@", text) is None, name
        assert str(PROJECT_ROOT) in text, name


def test_the_server_starts_after_asterisk_and_drains_its_calls_before_it_is_killed(installed: Path) -> None:
    serve = unit(installed, "ivr-serve@.service")
    assert "ivr-asterisk.service" in serve["After"][0] and serve["Wants"] == ["ivr-asterisk.service"]
    assert serve["ExecStart"] == [f"{PROJECT_ROOT}/.venv/bin/ivr serve --grace 40"]
    assert serve["TimeoutStopSec"] == ["55"]  # longer than the grace: calls finish before SIGKILL
    assert serve["Restart"] == ["always"] and serve["RestartPreventExitStatus"] == ["2"]
    assert serve["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    asterisk = unit(installed, "ivr-asterisk.service")
    assert asterisk["Type"] == ["forking"] and asterisk["Restart"] == ["on-failure"]
    assert asterisk["PIDFile"][0].endswith("/asterisk/run/asterisk.pid")
    for values in (serve, asterisk):
        assert values["LimitNOFILE"] == ["65536"]


def test_the_console_restarts_unless_its_settings_are_wrong(installed: Path) -> None:
    web = unit(installed, "ivr-web.service")
    assert web["ExecStart"] == [f"{PROJECT_ROOT}/.venv/bin/ivr web"]
    assert web["Restart"] == ["always"] and web["RestartPreventExitStatus"] == ["2"]


def test_systemd_accepts_the_units(installed: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if IN_CI:
            pytest.fail("systemd-analyze missing (package systemd)")
        pytest.skip("systemd-analyze missing")
    instance = installed / "ivr-serve@1.service"
    instance.write_text((installed / "ivr-serve@.service").read_text())
    done = subprocess.run(
        [
            analyze,
            "verify",
            str(installed / "ivr-asterisk.service"),
            str(instance),
            str(installed / "ivr-web.service"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # verify exits 0 even for a directive it ignores: anything it prints is a fault.
    assert done.returncode == 0 and done.stderr.strip() == "" and done.stdout.strip() == "", done.stderr


def test_logrotate_accepts_the_rule(installed: Path, tmp_path: Path) -> None:
    logrotate = shutil.which("logrotate") or (
        "/usr/sbin/logrotate" if Path("/usr/sbin/logrotate").exists() else None
    )
    if logrotate is None:
        if IN_CI:
            pytest.fail("logrotate missing (scripts/setup.sh installs it)")
        pytest.skip("logrotate missing")
    done = subprocess.run(
        [logrotate, "-d", "-s", str(tmp_path / "state"), str(installed / "ivr")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
