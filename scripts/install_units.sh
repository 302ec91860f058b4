#!/usr/bin/env bash
# Install the line's systemd units and logrotate rule (scripts/systemd/), filled in for this checkout:
#   ivr-asterisk.service   the project's Asterisk (ivr asterisk start/stop)
#   ivr-serve@.service     the FastAGI server; run instance 1 (two instances may overlap during an upgrade)
#   ivr-web.service        the staff console (loopback)
#   ivr (logrotate)        var/log, the SMS and mail outbox files, Asterisk's logs
#
#   sudo bash scripts/install_units.sh [--user USER] [--grace SECONDS] [--dest DIR]
#
# --dest writes everything into DIR (units and the logrotate rule side by side) instead of
# /etc/systemd/system and /etc/logrotate.d, and touches nothing else: for review or packaging.
# See docs/operations.md, "Running under systemd".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USER_NAME="${SUDO_USER:-$(id -un)}"
GRACE=30
DEST=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --user) USER_NAME="$2"; shift 2 ;;
        --grace) GRACE="$2"; shift 2 ;;
        --dest) DEST="$2"; shift 2 ;;
        *) echo "install_units: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ "$GRACE" =~ ^[0-9]+$ ]] || { echo "install_units: --grace takes whole seconds" >&2; exit 2; }
GROUP_NAME="$(id -gn "$USER_NAME")"
VAR="$(cd "$ROOT" && .venv/bin/python -c 'from ivr.config import load_settings; print(load_settings().var)')"

UNIT_DIR="${DEST:-/etc/systemd/system}"
ROTATE_DIR="${DEST:-/etc/logrotate.d}"
mkdir -p "$UNIT_DIR" "$ROTATE_DIR"

render() {  # template -> target, filling the @@NAME@@ marks; refuses a mark left unfilled
    sed -e "s|@@HOME@@|$ROOT|g" -e "s|@@VAR@@|$VAR|g" -e "s|@@USER@@|$USER_NAME|g" \
        -e "s|@@GROUP@@|$GROUP_NAME|g" -e "s|@@GRACE@@|$GRACE|g" -e "s|@@STOP_TIMEOUT@@|$((GRACE + 15))|g" \
        "$1" > "$2.tmp"
    if grep -q '@@[A-Z_]*@@' "$2.tmp"; then
        echo "install_units: unfilled mark in $1" >&2
        rm -f "$2.tmp"
        exit 1
    fi
    mv "$2.tmp" "$2"
}

render "$ROOT/scripts/systemd/ivr-asterisk.service" "$UNIT_DIR/ivr-asterisk.service"
render "$ROOT/scripts/systemd/ivr-serve@.service" "$UNIT_DIR/ivr-serve@.service"
render "$ROOT/scripts/systemd/ivr-web.service" "$UNIT_DIR/ivr-web.service"
render "$ROOT/scripts/systemd/ivr.logrotate" "$ROTATE_DIR/ivr"
chmod 0644 "$UNIT_DIR/ivr-asterisk.service" "$UNIT_DIR/ivr-serve@.service" "$UNIT_DIR/ivr-web.service" "$ROTATE_DIR/ivr"
echo "install_units: wrote $UNIT_DIR/ivr-asterisk.service, $UNIT_DIR/ivr-serve@.service, $UNIT_DIR/ivr-web.service, $ROTATE_DIR/ivr" >&2

if [[ -z "$DEST" ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
    echo "install_units: now: systemctl enable --now ivr-asterisk.service ivr-serve@1.service ivr-web.service" >&2
fi
