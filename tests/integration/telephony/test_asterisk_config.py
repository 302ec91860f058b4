"""Rendering the project's Asterisk configuration (no Asterisk needed): loopback only, secrets from
settings and never world-readable, no template marks left, every service number in the dialplan."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from ivr.config import PROJECT_ROOT, Settings
from ivr.testbed.asterisk import render_config


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    settings = Settings(
        home=PROJECT_ROOT,
        var_dir=tmp_path / "var",
        ami_secret="s3cret-for-test",
        sip_port=15060,
        ami_port=15038,
        rtp_start=32000,
        rtp_end=36000,
        max_calls=1500,
    )
    return render_config(settings, softphone_callerid="79161110003").etc


def test_no_template_marks_left(rendered: Path) -> None:
    for path in rendered.iterdir():
        assert "@@" not in path.read_text(), path.name


def test_everything_binds_to_loopback(rendered: Path) -> None:
    pjsip = (rendered / "pjsip.conf").read_text()
    assert "bind = 127.0.0.1:15060" in pjsip
    manager = (rendered / "manager.conf").read_text()
    assert "bindaddr = 127.0.0.1" in manager and "port = 15038" in manager
    assert "permit = 127.0.0.1/255.255.255.255" in manager
    assert "agi://127.0.0.1:" in (rendered / "extensions.conf").read_text()
    assert "rtpstart = 32000" in (rendered / "rtp.conf").read_text()
    assert "rtpend = 36000" in (rendered / "rtp.conf").read_text()


def test_secrets_come_from_settings_and_are_private(rendered: Path) -> None:
    assert "secret = s3cret-for-test" in (rendered / "manager.conf").read_text()
    for name in ("manager.conf", "pjsip.conf"):
        mode = (rendered / name).stat().st_mode
        assert not mode & (stat.S_IRWXG | stat.S_IRWXO), name
    assert "<79161110003>" in (rendered / "pjsip.conf").read_text()


def test_directories_point_at_var_and_the_installed_tree(rendered: Path, tmp_path: Path) -> None:
    conf = (rendered / "asterisk.conf").read_text()
    dirs = dict(re.findall(r"^(ast\w+dir) => (.+)$", conf, re.M))
    assert dirs["astetcdir"] == str(rendered)
    for key in ("astrundir", "astlogdir", "astspooldir", "astdbdir"):
        assert dirs[key].startswith(str(tmp_path / "var" / "asterisk")), key
    assert dirs["astmoddir"].endswith("/usr/lib/x86_64-linux-gnu/asterisk/modules")
    assert "[directories](!)" not in conf  # a template section would be ignored


def test_modules_are_listed_not_autoloaded(rendered: Path) -> None:
    modules = (rendered / "modules.conf").read_text()
    assert "autoload = no" in modules
    for needed in ("chan_pjsip.so", "res_pjsip_pubsub.so", "res_agi.so", "app_userevent.so", "func_env.so"):
        assert f"load = {needed}" in modules
    # the media path (docs/speech.md): AudioSocket, and chan_websocket with what it requires
    for needed in (
        "res_audiosocket.so", "app_audiosocket.so", "chan_audiosocket.so",
        "res_http_websocket.so", "res_websocket_client.so", "chan_websocket.so",
    ):  # fmt: skip
        assert f"load = {needed}" in modules


DIALPLAN = (PROJECT_ROOT / "dialplans" / "ivr.conf").read_text()


@pytest.mark.parametrize(
    "dialled",
    [
        "0505", "0500", "+79221110505", "79221110505", "89221110505", "+79261110500", "79261110500",
        "89261110500", "88005500500", "+78005500500", "78005500500", "88005553609", "+78005553609",
        "78005553609",
    ],
)  # fmt: skip
def test_every_dialled_form_has_an_extension(dialled: str) -> None:
    assert re.search(rf"^exten => {re.escape(dialled)},1,", DIALPLAN, re.M), dialled


# Every recording the dialplan plays from our own sounds: `${IVR_SOUNDS}/${LANG}/<folder>/<key>`.
DIALPLAN_SOUNDS = sorted(
    set(re.findall(r"\$\{IVR_SOUNDS\}/\$\{LANG\}/(common|\$\{IVR_LINE\})/(\w+)", DIALPLAN))
)


def _line_languages() -> dict[str, list[str]]:
    from ivr.trees.yamlfile import read_yaml

    out = {}
    for tree in sorted((PROJECT_ROOT / "prompts").glob("*.yaml")):
        data, _ = read_yaml(tree)
        out[tree.stem] = list(data["settings"]["languages"])
    return out


def test_the_dialplan_names_our_sounds() -> None:
    assert ("common", "error_apology") in DIALPLAN_SOUNDS
    assert ("common", "operators_unavailable") in DIALPLAN_SOUNDS


@pytest.mark.parametrize(("folder", "key"), DIALPLAN_SOUNDS)
def test_every_sound_the_dialplan_names_exists_in_every_language(folder: str, key: str) -> None:
    """A name the dialplan plays that was never rendered falls back to Asterisk's English stock prompt: a
    Russian caller once heard English at every transfer (`transfer_operator` vs `transfer_to_operator`)."""
    from ivr.config import load_settings
    from ivr.trees.texts import load_texts

    settings = load_settings(None)
    manifest_rendered = any(settings.sounds.glob("*/common/*.wav"))
    for line, languages in _line_languages().items():
        texts = load_texts(PROJECT_ROOT / "prompts" / "texts", line, languages)
        for lang in languages:
            entry = texts.get(lang, key)
            assert entry is not None, f"no {lang} text {key!r} for line {line}"
            # A text from common.<lang>.yaml is rendered under common/, a line's own under <line>/.
            where = "common" if Path(entry.file).name.startswith("common.") else line
            if folder == "common":
                assert where == "common", f"{key} ({lang}) is a {line} text, the dialplan looks in common/"
            if manifest_rendered or os.environ.get("CI"):
                wav = settings.sounds / lang / where / f"{key}.wav"
                assert wav.is_file(), f"{wav} is not rendered (ivr prompts render)"
