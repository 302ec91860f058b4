#!/usr/bin/env bash
# A local cluster on this machine, in network namespaces (docs/scale-out.md): Kamailio's dispatcher in
# front of N nodes (each one Asterisk + one `ivr serve`), one PostgreSQL they share, the staff console on
# the bridge address, and a namespace for callers. Needs root (namespaces, a bridge).
#
#   bash scripts/cluster.sh up [--nodes N] [--prefix ivrc] [--subnet 10.77.0] [--no-console]
#   bash scripts/cluster.sh status     exit 0 when Kamailio, PostgreSQL and every node are up and in the set
#   bash scripts/cluster.sh down       stops everything and removes the namespaces and the bridge
#
# Everything lives under var/cluster (the database, each node's var dir and prompts/, Kamailio's files).
# Traffic stays on the cluster's own /24: addresses on its veth pairs and its bridge, nothing else.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command="${1:-}"
case "$command" in
up)
    bash scripts/setup.sh
    # the audio every node plays (shared, hash-named files; only what is missing is rendered)
    .venv/bin/ivr prompts render --db-names --no-progress >&2
    ;;
down | status) ;;
*)
    echo "usage: bash scripts/cluster.sh up [--nodes N] | status | down" >&2
    exit 2
    ;;
esac
if [[ $(id -u) -ne 0 ]]; then
    echo "cluster: network namespaces need root" >&2
    exit 1
fi
exec .venv/bin/python -m ivr.testbed.cluster "$@"
