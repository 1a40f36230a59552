#!/usr/bin/env bash
# The chaos suite in full: 5,000 leads (or $1) through every service in one
# process, then through split mode (seven processes), with 10 % 5xx, 5 % 429
# and 2 % timeouts on both APIs and a random SIGKILL every 1–3 s while leads
# arrive. Prints the invariants as figures (see tests/integration/chaos.sh).
# Usage: bench/chaos.sh [LEADS]        (needs a build in ./build, or BUILD=...)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export BUILD=${BUILD:-$ROOT/build} CHAOS_LEADS=${1:-5000} POST_GAP_S=${POST_GAP_S:-0.01} \
    CHAOS_RATE_LIMIT=${CHAOS_RATE_LIMIT:-100} CHAOS_SETTLE_S=${CHAOS_SETTLE_S:-900}
for topology in single split; do
    TOPOLOGY=$topology bash "$ROOT/tests/integration/chaos.sh" | grep -v '^20[0-9][0-9]-'
done
