#!/usr/bin/env bash
# Installs a real Asterisk for this project, project-locally, without touching the host's apt sources.
#
# Route A (the distribution packages Asterisk, e.g. Debian sid, Ubuntu): `apt-get install asterisk`;
#   the tree is "/" and var/asterisk/mode says "system".
# Route B (Debian 12 bookworm has no asterisk package): download sid's asterisk with its whole
#   dependency closure using apt with private state (an empty dpkg status gives the full closure),
#   unpack every .deb with `dpkg-deb -x` into var/asterisk/root and run it through that tree's own
#   dynamic loader (see scripts/asterisk.sh). var/asterisk/mode says "tree".
#
# The Debian mirror is read at run time from the host's apt sources; no host name is written anywhere.
# Idempotent: a second run only checks the stamp file and exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="${IVR_VAR_DIR:-$ROOT/var}"
BASE="$VAR/asterisk"
TREE="$BASE/root"
STAMP="$BASE/installed"
SUITE="${IVR_ASTERISK_SUITE:-sid}"

log() { echo "install_asterisk: $*" >&2; }

if [[ -f "$STAMP" ]]; then
    mode="$(cat "$BASE/mode" 2>/dev/null || echo tree)"
    if [[ "$mode" == system && -x /usr/sbin/asterisk ]] || [[ "$mode" == tree && -x "$TREE/usr/sbin/asterisk" ]]; then
        log "already installed ($mode: $(cat "$STAMP"))"
        exit 0
    fi
fi
mkdir -p "$BASE"

# Route A: a distribution package exists.
candidate="$(apt-cache policy asterisk 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [[ -n "$candidate" && "$candidate" != "(none)" && "${IVR_ASTERISK_FORCE_TREE:-}" != 1 ]]; then
    log "installing the distribution's asterisk $candidate"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends asterisk >&2
    # The packaged service would grab port 5060 on all addresses; this project runs its own instance.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now asterisk >/dev/null 2>&1 || true; fi
    echo system >"$BASE/mode"
    echo "asterisk $candidate (distribution package)" >"$STAMP"
    exit 0
fi

# Route B: sid's packages unpacked into a private tree.
uri=""
for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    uri="$(awk '/^URIs:/ {print $2; exit}' "$f")"
    [[ -n "$uri" ]] && break
done
if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
    uri="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
fi
[[ -n "$uri" ]] || { log "no Debian mirror found in /etc/apt/sources.list.d or sources.list"; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

APT="$BASE/apt"
rm -rf "$APT"
mkdir -p "$APT/etc/sources.list.d" "$APT/etc/preferences.d" "$APT/etc/apt.conf.d" "$APT/lists/partial" \
    "$APT/cache/archives/partial" "$APT/log"
: >"$APT/status"
echo "deb [signed-by=$keyring] $uri $SUITE main" >"$APT/etc/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$APT/etc/sources.list"
    -o "Dir::Etc::SourceParts=$APT/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$APT/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
    -o "Dir::State::Lists=$APT/lists"
    -o "Dir::State::status=$APT/status"
    -o "Dir::State::extended_states=$APT/extended_states"
    -o "Dir::Cache=$APT/cache"
    -o "Dir::Log=$APT/log"
    -o "Acquire::Check-Valid-Until=false"
    -o "APT::Install-Recommends=false"
    -o "Debug::NoLocking=true"
    -o "APT::Get::AllowUnauthenticated=false"
)
log "fetching $SUITE package lists"
apt-get "${apt_opts[@]}" -qq update >&2
log "downloading asterisk with its dependency closure"
apt-get "${apt_opts[@]}" -qq -y --download-only install asterisk >&2

debs=("$APT"/cache/archives/*.deb)
log "unpacking ${#debs[@]} packages"
rm -rf "$TREE.new"
mkdir -p "$TREE.new"
for deb in "${debs[@]}"; do
    dpkg-deb -x "$deb" "$TREE.new"
done
# Debian's merged /usr: lib64 may be a symlink in the packages; make sure the loader path exists.
if [[ ! -e "$TREE.new/usr/lib64/ld-linux-x86-64.so.2" ]]; then
    mkdir -p "$TREE.new/usr/lib64"
    ln -sf ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$TREE.new/usr/lib64/ld-linux-x86-64.so.2"
fi
rm -rf "$TREE"
mv "$TREE.new" "$TREE"
version="$(ls "$APT"/cache/archives/ | sed -n 's/^asterisk_\([^_]*\)_.*/\1/p' | sed 's/%3a/:/' | head -1)"
rm -rf "$APT/cache/archives"/*.deb "$APT/lists"
echo tree >"$BASE/mode"
echo "asterisk $version ($SUITE, unpacked into $TREE)" >"$STAMP"
log "installed asterisk $version into $TREE"
