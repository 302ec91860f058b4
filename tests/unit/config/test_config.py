"""Settings (ivr/config.py): defaults < settings file < IVR_* environment < command line; a key that is not
a setting, a misspelt IVR_* variable and a value of the wrong type are refused (StartupRefused) with a
message naming the file or variable, the key and what was expected."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ivr import config
from ivr.config import PROJECT_ROOT, Settings, StartupRefused, load_settings


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home and an environment without any IVR_* variable of the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("IVR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IVR_HOME", str(tmp_path))
    return tmp_path


def write_settings(home: Path, text: str) -> Path:
    path = home / "ivr.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(**overrides: object) -> str:
    with pytest.raises(StartupRefused) as caught:
        load_settings(**overrides)
    return str(caught.value)


# ---- unknown keys -------------------------------------------------------------------------------------


def test_a_misspelt_key_in_the_file_is_refused_with_the_nearest_setting(home: Path) -> None:
    path = write_settings(home, "agi_prot = 4573\n")
    assert refusal() == f"{path}: unknown setting 'agi_prot' (did you mean 'agi_port'?)"


def test_a_misspelt_key_in_a_named_file_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = home / "elsewhere.toml"
    path.write_text('tts_engnie = "espeak"\n', encoding="utf-8")
    with pytest.raises(
        StartupRefused, match=r"elsewhere\.toml: unknown setting 'tts_engnie' \(did you mean 'tts_engine'\?\)"
    ):
        load_settings(path)
    monkeypatch.setenv("IVR_CONFIG", str(path))
    assert "unknown setting 'tts_engnie'" in refusal()


def test_key_case_does_not_hide_the_suggestion(home: Path) -> None:
    write_settings(home, "AGI_PORT = 4573\n")
    assert refusal().endswith("unknown setting 'AGI_PORT' (did you mean 'agi_port'?)")


def test_a_key_like_no_setting_lists_the_settings(home: Path) -> None:
    write_settings(home, "colour = 3\n")
    message = refusal()
    assert "unknown setting 'colour' (known settings: home, var_dir," in message
    assert all(field.name in message for field in dataclasses.fields(Settings))


def test_a_table_is_refused_with_the_top_level_keys(home: Path) -> None:
    write_settings(home, "[agi]\nport = 4573\n")
    assert refusal().endswith(
        "unknown setting 'agi' (a table; settings are top-level keys: "
        "agi_host, agi_port, agi_reuse_port, agi_read_timeout)"
    )


def test_every_problem_is_reported_at_once(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_settings(home, 'agi_prot = 1\nami_port = "x"\n')
    monkeypatch.setenv("IVR_SIP_PROT", "5060")
    assert refusal().splitlines() == [
        "3 problems in the settings:",
        f"  {path}: unknown setting 'agi_prot' (did you mean 'agi_port'?)",
        f"  {path}: setting 'ami_port' must be an integer, not the string 'x'",
        "  environment: unknown setting 'IVR_SIP_PROT' (did you mean 'IVR_SIP_PORT'?)",
    ]


def test_an_invalid_file_is_refused_naming_it(home: Path) -> None:
    path = write_settings(home, "agi_port = \n")
    assert refusal().startswith(f"{path}: not valid TOML: ")


def test_a_misspelt_environment_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_AGI_PROT", "4573")
    assert refusal() == "environment: unknown setting 'IVR_AGI_PROT' (did you mean 'IVR_AGI_PORT'?)"


def test_an_environment_variable_must_match_in_upper_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_agi_port", "4573")
    assert refusal() == "environment: unknown setting 'IVR_agi_port' (did you mean 'IVR_AGI_PORT'?)"


def test_an_empty_misspelt_variable_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_LOG_LEVLE", "")
    assert "unknown setting 'IVR_LOG_LEVLE' (did you mean 'IVR_LOG_LEVEL'?)" in refusal()


def test_variables_without_the_prefix_are_not_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVRX_AGI_PROT", "1")
    monkeypatch.setenv("MY_IVR_THING", "1")
    assert load_settings().agi_port == 4573


# ---- the scripts' own IVR_* variables -------------------------------------------------------------------

# Set on purpose by scripts/, asterisk_conf/ (the stdio AGI wrapper), ivr/testbed and the tests.
SCRIPT_VARIABLES = {
    "IVR_HOME",
    "IVR_VAR_DIR",
    "IVR_CONFIG",
    "IVR_SKIP_APT",
    "IVR_SKIP_TTS",
    "IVR_PYTHON",
    "IVR_ASTERISK_SUITE",
    "IVR_ASTERISK_FORCE_TREE",
    "IVR_SOFTPHONE_CALLERID",
}


def variables_set_by_the_project() -> set[str]:
    """IVR_* environment variables the project reads or sets outside ivr/config.py (not the dialplan's
    channel variables, which never reach a process environment)."""
    found: set[str] = set()
    for path in (PROJECT_ROOT / "scripts").glob("*.sh"):
        found |= set(re.findall(r"\$\{?(IVR_[A-Z0-9_]+)", path.read_text(encoding="utf-8")))
    wrapper = (PROJECT_ROOT / "asterisk_conf" / "ivr-agi.sh").read_text(encoding="utf-8")
    found |= set(re.findall(r"^(IVR_[A-Z0-9_]+)=", wrapper, re.MULTILINE))
    python = [*(PROJECT_ROOT / "ivr").rglob("*.py"), *(PROJECT_ROOT / "tests").rglob("*.py")]
    for path in python:
        if path.resolve() == Path(__file__).resolve():
            continue  # this file's misspellings are deliberate
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"environ\.get\(\s*\"(IVR_[A-Z0-9_]+)\"", text))
        found |= set(re.findall(r"setenv\(\s*\"(IVR_[A-Z0-9_]+)\"", text))
        if path.is_relative_to(PROJECT_ROOT / "ivr" / "testbed") or path.is_relative_to(
            PROJECT_ROOT / "tests"
        ):
            # entries of the environment dicts handed to servers (one per line)
            found |= set(re.findall(r"^\s*\"(IVR_[A-Z0-9_]+)\":", text, re.MULTILINE))
    return found


def test_the_scan_finds_the_scripts_variables() -> None:
    assert SCRIPT_VARIABLES - {"IVR_CONFIG"} <= variables_set_by_the_project()


def test_the_projects_own_variables_are_accepted(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    typed = {"int": "4000", "float": "0.5", "str": "x", "bool": "true", "Path": str(home / "p")}
    for name in sorted(SCRIPT_VARIABLES | variables_set_by_the_project()):
        field = config._ENV_NAMES.get(name)
        if field is None:
            assert name in config.ENV_NOT_SETTINGS, name
            monkeypatch.setenv(name, "1")
        else:
            monkeypatch.setenv(name, typed[config._SPECS[field].kind.__name__])
    monkeypatch.setenv("IVR_HOME", str(home))
    monkeypatch.setenv("IVR_VAR_DIR", str(home / "elsewhere"))
    monkeypatch.setenv("IVR_CONFIG", str(home / "absent.toml"))
    settings = load_settings()
    assert settings.var == home / "elsewhere"
    assert settings.home == home.resolve()


# ---- types ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('agi_port = "abc"', "setting 'agi_port' must be an integer, not the string 'abc'"),
        (
            'agi_port = "4573"',
            "setting 'agi_port' must be an integer, not the string '4573' (write it without quotes)",
        ),
        ("agi_port = 4573.5", "setting 'agi_port' must be an integer, not the number 4573.5"),
        ("agi_port = true", "setting 'agi_port' must be an integer, not true/false True"),
        (
            'speech_end_silence = "long"',
            "setting 'speech_end_silence' must be a number, not the string 'long'",
        ),
        ("log_level = 10", "setting 'log_level' must be a string, not the integer 10 (put it in quotes)"),
        (
            "prompts_dir = [1]",
            "setting 'prompts_dir' must be a path (a string), not a list [1] (put it in quotes)",
        ),
        ("ami_secret = 123456", "setting 'ami_secret' must be a string (the value is secret: not shown)"),
    ],
)
def test_a_wrong_type_in_the_file_is_refused(home: Path, line: str, message: str) -> None:
    path = write_settings(home, line + "\n")
    assert refusal() == f"{path}: {message}"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("IVR_AGI_PORT", "abc", "an integer"),
        ("IVR_MAX_CALL_SECONDS", "9.5", "an integer"),
        ("IVR_SPEECH_MIN_CONFIDENCE", "high", "a number"),
    ],
)
def test_a_wrong_type_in_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    assert refusal() == f"environment: {name} must be {expected}, not {value!r}"


def test_a_wrong_type_from_the_command_line_is_refused() -> None:
    assert refusal(agi_port="abc") == "command line: agi_port must be an integer, not 'abc'"


def test_an_unknown_keyword_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="agi_prot"):
        load_settings(agi_prot=1)


def test_values_get_the_type_of_their_annotation(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_settings(home, 'speech_end_silence = 1\nspeech_model = "~/model"\nsip_port = 5070\n')
    monkeypatch.setenv("IVR_AGI_READ_TIMEOUT", " 12 ")
    monkeypatch.setenv("IVR_AMI_PORT", "6000")
    monkeypatch.setenv("IVR_SOUNDS_DIR", str(home / "s"))
    settings = load_settings(var_dir=str(home / "v"), prompts_dir=home / "p")
    assert settings.speech_end_silence == 1.0 and isinstance(settings.speech_end_silence, float)
    assert settings.speech_model == Path("~/model").expanduser()
    assert settings.sip_port == 5070
    assert settings.agi_read_timeout == 12.0
    assert settings.ami_port == 6000
    assert settings.sounds == home / "s"
    assert settings.var == home / "v" and isinstance(settings.var_dir, Path)
    assert settings.prompts == home / "p"
    assert settings.db_url == f"sqlite:///{home / 'v' / 'ivr.sqlite3'}"


def test_every_setting_has_a_checked_type_and_its_default_passes() -> None:
    defaults = Settings(home=PROJECT_ROOT)
    for field in dataclasses.fields(Settings):
        spec = config._SPECS[field.name]
        assert spec.kind in (bool, int, float, str, Path), field.name
        if field.default is None:
            assert spec.optional, field.name
        value = getattr(defaults, field.name)
        assert config._convert(field.name, value, typed=False) == value, field.name


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("off", False)],
)
def test_a_true_false_setting_reads_the_usual_words(text: str, value: bool) -> None:
    flag = config._Spec(bool, optional=False)
    assert config._checked(flag, text, typed=False) is value
    assert config._checked(flag, value, typed=True) is value


def test_a_true_false_setting_refuses_anything_else() -> None:
    flag = config._Spec(bool, optional=False)
    with pytest.raises(config._BadValue, match="must be true or false, not 'maybe'"):
        config._checked(flag, "maybe", typed=False)
    with pytest.raises(config._BadValue, match="must be true or false, not the integer 1"):
        config._checked(flag, 1, typed=True)


def test_an_unsupported_annotation_is_caught() -> None:
    assert config._spec("x", int | None) == config._Spec(int, optional=True)
    with pytest.raises(TypeError, match=r"Settings\.x: unsupported annotation"):
        config._spec("x", list[str])
    with pytest.raises(TypeError):
        config._spec("x", int | str)


# ---- precedence -----------------------------------------------------------------------------------------


def test_defaults_then_file_then_environment_then_command_line(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_settings(home, 'agi_port = 1001\nami_port = 1002\nsip_port = 1003\nlog_level = "WARNING"\n')
    monkeypatch.setenv("IVR_AMI_PORT", "2002")
    monkeypatch.setenv("IVR_SIP_PORT", "2003")
    monkeypatch.setenv("IVR_LOG_LEVEL", "ERROR")
    monkeypatch.setenv("IVR_OPERATOR_QUEUE", "")  # set but empty: as if unset
    settings = load_settings(sip_port="3003", log_level="DEBUG", database_url=None)
    assert settings.agi_host == "127.0.0.1"  # default
    assert settings.operator_queue == "operators"
    assert settings.agi_port == 1001  # file
    assert settings.ami_port == 2002  # environment over file
    assert settings.sip_port == 3003  # command line over environment
    assert settings.log_level == "DEBUG"
    assert settings.database_url == f"sqlite:///{home / 'var' / 'ivr.sqlite3'}"  # None: not given


def test_the_secrets_file_fills_in_what_the_settings_file_lacks(home: Path) -> None:
    write_settings(home, 'ami_user = "admin"\n')
    (home / "var").mkdir()
    (home / "var" / "secrets.toml").write_text(
        'ami_secret = "s3cret"\nami_user = "other"\nsoftphone_password = "pw"\nsoftphone_callerid = "7916"\n',
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.ami_secret == "s3cret"
    assert settings.ami_user == "admin"


def test_the_secrets_file_refuses_unknown_keys_too(home: Path) -> None:
    (home / "var").mkdir()
    path = home / "var" / "secrets.toml"
    path.write_text('ami_secert = "s3cret"\n', encoding="utf-8")
    assert refusal() == f"{path}: unknown setting 'ami_secert' (did you mean 'ami_secret'?)"


def test_settings_stay_a_plain_dataclass(home: Path) -> None:
    settings = load_settings()
    settings.agi_host = "0.0.0.0"
    assert settings.agi_host == "0.0.0.0"
    assert "ami_secret" not in repr(Settings(home=home, ami_secret="s3cret"))


# ---- what the operator sees ------------------------------------------------------------------------------


def test_the_cli_prints_the_refusal_and_exits_2(home: Path) -> None:
    path = write_settings(home, "agi_prot = 4573\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith("IVR_")}
    env["IVR_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "validate", "--no-audio"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{path}: unknown setting 'agi_prot' (did you mean 'agi_port'?)" in result.stderr
