#!/usr/bin/env bash
# Installs the offline Russian TTS engine RHVoice (Debian's non-free component: packages `rhvoice`
# and `rhvoice-russian`; the voices anna, elena, irina, aleksandr are LGPL-2.1) plus the tools the
# prompt renderer needs (espeak-ng, ffmpeg, sox).
#
# The host's apt sources may list only `main`. Rather than editing them, this script reads the mirror
# URI the host already uses (from /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list) at
# run time, writes a private sources list with `main non-free` for the same suite into a temporary
# directory, and points apt at it for this one install. The host's configuration is left untouched.
#
# Usage: sudo scripts/install_tts.sh        (idempotent; exits 0 when already installed)
# RHVoice is optional: `ivr prompts render --engine auto` uses espeak-ng when RHVoice is missing.
set -euo pipefail

need_base=()
for tool in espeak-ng ffmpeg sox; do
    command -v "$tool" >/dev/null 2>&1 || need_base+=("$tool")
done
if ((${#need_base[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_base[@]}"
fi

if command -v RHVoice-test >/dev/null 2>&1 && [ -d /usr/share/RHVoice/voices/anna ]; then
    echo "RHVoice with Russian voices already installed"
    exit 0
fi

mirror=""
suite=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    suite=$(awk '/^Suites:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    read -r mirror suite < <(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i, $(i+1); exit}}' /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
    echo "install_tts: no Debian mirror found in the apt sources; RHVoice not installed (espeak-ng will be used)" >&2
    exit 0
fi
suite=${suite:-$(. /etc/os-release && echo "$VERSION_CODENAME")}

work=$(mktemp -d)
chmod 755 "$work"  # apt downloads as the _apt user
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror $suite main non-free" >"$work/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
)
if ! apt-get "${apt_opts[@]}" update -qq; then
    echo "install_tts: cannot read $suite non-free from the configured mirror; espeak-ng will be used" >&2
    exit 0
fi
if DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends \
    rhvoice rhvoice-russian rhvoice-english; then
    echo "RHVoice installed"
else
    echo "install_tts: RHVoice could not be installed; espeak-ng will be used" >&2
fi
