#!/usr/bin/env bash
# Command 1: run the line on this machine. Installs what is missing (scripts/setup.sh), creates and
# seeds the demo database, renders prompt audio if needed, starts the project-local Asterisk and the
# FastAGI server and the staff console (`ivr web`, loopback), and prints how to call from a SIP softphone
# and where the console is. Ctrl-C stops everything cleanly.
#
# A server that dies is started again, with a back-off (1, 2, 4 ... 30 s); Asterisk keeps running meanwhile,
# so calls in progress get the dialplan's failure path (apology, operator) and new calls reach the new
# server. A server that refuses to start (exit 2: a settings or schema problem) is not retried.
#
# Options via environment: IVR_SIP_PORT (default 5060), IVR_SOFTPHONE_CALLERID (the number the softphone
# calls from; default the demo subscriber 79161234567).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
IVR=.venv/bin/ivr

bash scripts/setup.sh
"$IVR" db init >&2
# Only changed prompts are rendered; the first run renders every one (about a minute): progress shows.
"$IVR" prompts render --db-names >&2 || echo "run: prompt rendering failed; lines without audio are refused" >&2

VAR="$(.venv/bin/python -c 'from ivr.config import load_settings; print(load_settings().var)')"
PIDFILE="$VAR/run/ivr-serve.pid"
mkdir -p "$VAR/run"
serve_pid=""
web_pid=""
cleanup() {
    trap - EXIT INT TERM
    if [[ -n "$web_pid" ]] && kill -0 "$web_pid" 2>/dev/null; then
        kill -TERM "$web_pid" 2>/dev/null || true
        wait "$web_pid" 2>/dev/null || true
    fi
    if [[ -n "$serve_pid" ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    "$IVR" asterisk stop >&2 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$IVR" asterisk stop >/dev/null 2>&1 || true  # a leftover from a run that was killed
"$IVR" asterisk start

sip_port="$(.venv/bin/python -c 'from ivr.config import load_settings; print(load_settings().sip_port)')"
web_at="$(.venv/bin/python -c 'from ivr.config import load_settings as l; s = l(); print(f"{s.web_host}:{s.web_port}")')"
# The staff console: its log goes to var/log/web.log; it prints its address when it starts.
"$IVR" web >>"$VAR/log/web.log" 2>&1 &
web_pid=$!
cat <<INFO

=== The IVR line is up (loopback only) ===
SIP softphone on this machine (e.g. Linphone, MicroSIP, baresip, pjsua):
  server / domain : 127.0.0.1:${sip_port} (UDP)
  user            : softphone
  password        : softphone_password in var/secrets.toml (generated; not printed here)
  calls from      : ${IVR_SOFTPHONE_CALLERID:-79161234567} (set IVR_SOFTPHONE_CALLERID to be another demo subscriber)
An operator's softphone (answers callers who ask for an operator, and places callbacks):
  user agent1 or agent2, password agent1_password / agent2_password in var/secrets.toml, same server
Numbers:
  0505, 0500                         operator line, home network (caller ID identifies you)
  +79221110505, +79261110500 (7/8…)  operator line from roaming
  88005500500                        operator line from a landline (number + PIN)
  88005553609                        loyalty-card line
  *9<number>                         the same over the per-call stdio AGI
  *8<number>                         the same over EAGI: speak as well as press keys (docs/speech.md)
Staff console (edit, hear, try and publish the menus): http://${web_at}/
  first account: .venv/bin/ivr staff add NAME --role admin   (asks for the password; never printed)
Scripted call without a softphone:   .venv/bin/ivr dial 0505 --from 79161234567 --keys 1
Demo subscribers (PINs in docs/demo-subscribers.md):
INFO
"$IVR" db subscribers 2>/dev/null || true
echo
echo "FastAGI server starting; Ctrl-C stops the server and Asterisk."

backoff=1
while true; do
    "$IVR" serve &
    serve_pid=$!
    echo "$serve_pid" >"$PIDFILE"
    started=$(date +%s)
    set +e
    wait "$serve_pid"
    code=$?
    set -e
    serve_pid=""
    if ((code == 0)); then
        break  # stopped on purpose (SIGTERM to the server alone)
    fi
    if ((code == 2)); then
        echo "run: ivr serve refused to start (see above); not restarting" >&2
        exit 2
    fi
    if (($(date +%s) - started > 60)); then
        backoff=1  # it had been running fine: restart at once
    fi
    echo "run: ivr serve died (exit $code); restarting in $backoff s. Asterisk keeps running." >&2
    sleep "$backoff"
    backoff=$((backoff * 2 > 30 ? 30 : backoff * 2))
done
