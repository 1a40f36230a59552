#!/usr/bin/env bash
# Ingest throughput and latency: wrk posting distinct leads to a real
# `leadbus --target=ingest` on loopback, at 16 and 64 connections, with
# durable commits (DB_SYNCHRONOUS=FULL) and without (OFF) to show what
# durability costs. Each cell is the median of RUNS runs of SECS seconds.
# Usage: bench/ingest_wrk.sh [SECS] [RUNS]      (needs wrk and a build in ./build)
set -euo pipefail
SECS=${1:-10}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LEADBUS=${BUILD:-$ROOT/build}/leadbus
T=$(mktemp -d /tmp/leadbus-wrk.XXXXXX)
PORT=$((20000 + RANDOM % 10000))
export LEADBUS_KEY=bench-key-0123456789abcdef
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

one() { # sync conns -> "rps p50 p99"
    rm -rf "$T/data"
    API_KEYS=$LEADBUS_KEY PORT=$PORT HTTP_BIND=127.0.0.1 DATA_DIR="$T/data" DB_SYNCHRONOUS=$1 \
        LOG_LEVEL=warn BUS_INGEST_PUB="ipc://$T/p.ipc" BUS_INGEST_REPLAY="ipc://$T/r.ipc" \
        "$LEADBUS" --target=ingest >"$T/leadbus.log" 2>&1 &
    local pid=$!
    until curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.05; done
    wrk -t2 -c"$2" -d"${SECS}s" --latency -s "$ROOT/bench/ingest_leads.lua" \
        "http://127.0.0.1:$PORT" >"$T/wrk.out"
    kill -TERM $pid; wait $pid
    local r; r=$(grep RESULT "$T/wrk.out")
    grep -q "non2xx=0" <<<"$r" || { echo "non-202 answers: $r" >&2; exit 1; }
    sed -E 's/.*rps=([0-9.]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+).*/\1 \2 \3/' <<<"$r"
}

echo "ingest: POST /leads, distinct leads, ${SECS}s runs, median of $RUNS"
printf '%-8s %-6s %10s %8s %8s\n' sync conns "req/s" "p50 ms" "p99 ms"
for sync in FULL OFF; do
    for c in 16 64; do
        for i in $(seq "$RUNS"); do one $sync $c; done >"$T/cell"
        printf '%-8s %-6s %10s %8s %8s\n' $sync $c "$(cut -d' ' -f1 "$T/cell" | median)" \
            "$(cut -d' ' -f2 "$T/cell" | median)" "$(cut -d' ' -f3 "$T/cell" | median)"
    done
done
