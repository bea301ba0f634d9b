#!/usr/bin/env bash
# chaos.sh: run the chaos test (TestChaos in cmd/rswarm) for longer than `make test` does.
#   scripts/chaos.sh [ROUNDS]   (default 5; one round is about a minute of faults under load)
# Every role runs as its own process on simulated workers under a steady load; each round
# kills (-9), pauses (-STOP past the heartbeat grace, then -CONT) and restarts every role.
# At the end it prints the counts: jobs, kills, pauses, lost, failed, double-booked, ran-twice.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
case $rounds in ''|*[!0-9]*|0) echo "chaos.sh: ROUNDS must be a positive number, got '$rounds'" >&2; exit 2 ;; esac
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
timeout=$((10 + rounds * 3))m
RSWARM_CHAOS_ROUNDS=$rounds exec go test -count=1 -timeout "$timeout" -run '^TestChaos$' -v ./cmd/rswarm
