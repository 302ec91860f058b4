#!/usr/bin/env bash
# Installs everything the line needs on a Debian 12 machine where only the package registries are
# reachable. Idempotent and cached: a second run checks stamps and takes seconds.
#
#   1. system packages (apt): ffmpeg, sip-tester (sipp), espeak-ng, sox, graphviz, postgresql, python3-venv,
#      logrotate (the log rule in scripts/systemd is checked by the tests), chromium and chromium-driver
#      (the staff console's browser tests), kamailio and iproute2 (the local cluster, scripts/cluster.sh)
#   2. the virtualenv .venv with the project: pip install -e '.[dev,speech,bench]' (again only when pyproject changes)
#   3. a real Asterisk, project-locally under var/asterisk (scripts/install_asterisk.sh)
#   4. offline Russian TTS (scripts/install_tts.sh; optional, espeak-ng is the fallback)
#   5. var/secrets.toml with a random AMI secret and softphone password (never overwritten)
#
# Needs root for apt (as in CI and the dev machines). Environment: IVR_SKIP_APT=1 skips step 1,
# IVR_SKIP_TTS=1 skips step 4.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VAR="${IVR_VAR_DIR:-$ROOT/var}"
mkdir -p "$VAR/log"
log() { echo "setup: $*" >&2; }
began=$(date +%s%N)

# ---- 1. system packages ------------------------------------------------------------------------
PACKAGES=(ca-certificates python3 python3-venv python3-pip ffmpeg sip-tester espeak-ng sox graphviz
    postgresql debootstrap logrotate chromium chromium-driver kamailio iproute2)
if [[ "${IVR_SKIP_APT:-}" != 1 ]]; then
    missing=()
    for pkg in "${PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        if [[ $(id -u) -ne 0 ]]; then
            log "missing system packages (${missing[*]}); run this script as root"
            exit 1
        fi
        log "installing system packages: ${missing[*]}"
        apt-get update -qq >&2
        # postgresql's maintainer scripts would start a cluster service; the tests run their own server.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        log "system packages present"
    fi
fi

# ---- 2. virtualenv -----------------------------------------------------------------------------
PYTHON="${IVR_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            PYTHON="$(command -v "$candidate")"
            break
        fi
    done
fi
[[ -n "$PYTHON" ]] || { log "no Python >= 3.11 found"; exit 1; }
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
    log "creating .venv with $PYTHON"
    rm -rf .venv
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.ivr-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" || ! -x .venv/bin/ivr ]]; then
    log "installing the project into .venv (pip install -e '.[dev,speech,bench]')"
    .venv/bin/python -m pip install -q --upgrade pip >&2
    .venv/bin/python -m pip install -q -e '.[dev,speech,bench]' >&2
    echo "$want" >"$stamp"
else
    log ".venv up to date"
fi

# ---- 3. Asterisk -------------------------------------------------------------------------------
bash scripts/install_asterisk.sh

# ---- 4. TTS ------------------------------------------------------------------------------------
if [[ "${IVR_SKIP_TTS:-}" != 1 && -f scripts/install_tts.sh ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        bash scripts/install_tts.sh >&2 || log "TTS install failed; espeak-ng will be used"
    else
        log "not root: skipping scripts/install_tts.sh"
    fi
fi

# ---- 5. secrets --------------------------------------------------------------------------------
.venv/bin/python - "$VAR" <<'PY'
import sys
from pathlib import Path

from ivr.config import load_settings
from ivr.testbed.asterisk import ensure_secrets

settings = load_settings(var_dir=Path(sys.argv[1]))
path = ensure_secrets(settings)
print(f"setup: secrets in {path}", file=sys.stderr)
PY

elapsed_ms=$((($(date +%s%N) - began) / 1000000))
log "done in $((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000))) s"
