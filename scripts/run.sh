#!/usr/bin/env bash
# Command 1: run the line on this machine. Installs what is missing (scripts/setup.sh), creates and
# seeds the demo database, renders prompt audio if needed, starts the project-local Asterisk and the
# FastAGI server, and prints how to call from a SIP softphone. Ctrl-C stops everything cleanly.
#
# Options via environment: IVR_SIP_PORT (default 5060), IVR_SOFTPHONE_CALLERID (the number the softphone
# calls from; default the demo subscriber 79161234567).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
IVR=.venv/bin/ivr

bash scripts/setup.sh
"$IVR" db init >&2
if "$IVR" prompts --help >/dev/null 2>&1; then
    "$IVR" prompts render --db-names --no-progress >&2 || echo "run: prompt rendering failed; missing audio is skipped" >&2
fi

serve_pid=""
cleanup() {
    trap - EXIT INT TERM
    if [[ -n "$serve_pid" ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    "$IVR" asterisk stop >&2 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$IVR" asterisk stop >/dev/null 2>&1 || true  # a leftover from a run that was killed
"$IVR" asterisk start

sip_port="$(.venv/bin/python -c 'from ivr.config import load_settings; print(load_settings().sip_port)')"
cat <<INFO

=== The IVR line is up (loopback only) ===
SIP softphone on this machine (e.g. Linphone, MicroSIP, baresip, pjsua):
  server / domain : 127.0.0.1:${sip_port} (UDP)
  user            : softphone
  password        : softphone_password in var/secrets.toml (generated; not printed here)
  calls from      : ${IVR_SOFTPHONE_CALLERID:-79161234567} (set IVR_SOFTPHONE_CALLERID to be another demo subscriber)
Numbers:
  0505, 0500                         operator line, home network (caller ID identifies you)
  +79221110505, +79261110500 (7/8…)  operator line from roaming
  88005500500                        operator line from a landline (number + PIN)
  88005553609                        loyalty-card line
  *9<number>                         the same over the per-call stdio AGI
Scripted call without a softphone:   .venv/bin/ivr dial 0505 --from 79161234567 --keys 1
Demo subscribers (PINs in docs/demo-subscribers.md):
INFO
"$IVR" db subscribers 2>/dev/null || true
echo
echo "FastAGI server starting; Ctrl-C stops the server and Asterisk."

"$IVR" serve &
serve_pid=$!
wait "$serve_pid"
