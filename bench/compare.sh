#!/usr/bin/env bash
# leadbus against the original design (bench/baseline: Express with an
# in-memory setTimeout queue), side by side in one run on this machine, each
# against its own fresh sandbox on loopback:
#   1. intake: wrk, 64 connections, SECS seconds: requests/s and p99, and RSS
#      idle and after the load (leadbus: ingest+call-scheduler+dialer, fsync on);
#   2. a backlog due at once under Exotel's rate limit (scaled to 50 calls per
#      5 s, the sandbox enforcing it like Exotel's 200 per minute): 150 leads;
#      how many calls get placed, and how fast;
#   2b. 1,000 leads due at once with no limit: calls dispatched per second;
#   3. kill -9 with 100 calls pending, then a restart: how many are ever placed.
# Usage: bench/compare.sh [SECS]     (needs wrk, node and a build in ./build)
set -euo pipefail
SECS=${1:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LEADBUS=${BUILD:-$ROOT/build}/leadbus
T=$(mktemp -d /tmp/leadbus-compare.XXXXXX)
export LEADBUS_KEY=bench-key-0123456789abcdef API_KEYS=bench-key-0123456789abcdef HTTP_BIND=127.0.0.1
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
[ -d "$ROOT/bench/baseline/node_modules" ] || (cd "$ROOT/bench/baseline" && npm install --silent --no-audit --no-fund)
PS=$((20000 + RANDOM % 5000)); PL=$((PS + 1)); PN=$((PS + 2))
export BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" \
    BUS_CALL_SCHEDULER_PUB="ipc://$T/s.ipc" BUS_CALL_SCHEDULER_REPLAY="ipc://$T/sr.ipc" \
    BUS_DIALER_PUB="ipc://$T/d.ipc" BUS_DIALER_REPLAY="ipc://$T/dr.ipc" \
    EXOTEL_BASE_URL="http://127.0.0.1:$PS/sandbox/exotel" CALL_HOURS=always LOG_LEVEL=warn

wait_url() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null && return 0; sleep 0.05; done; return 1; }
rss() { awk -v k="$2:" '$1 == k {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
sandbox() { # LIMIT WINDOW_MS
    [ -z "${SB:-}" ] || { kill "$SB"; wait "$SB" 2>/dev/null || true; }
    PORT=$PS DATA_DIR="$T/sb" SANDBOX_EXOTEL_RATE_LIMIT=$1 SANDBOX_EXOTEL_RATE_WINDOW_MS=$2 SANDBOX_RING_MS=100000 \
        SANDBOX_REQUEST_LOG=100000 "$LEADBUS" --target=sandbox >>"$T/sandbox.log" 2>&1 &
    SB=$!
    wait_url "http://127.0.0.1:$PS/healthz"
}
server() { # WHICH DELAY_MS [LIMIT WINDOW]: start leadbus or the baseline; sets SRV and URL
    if [ "$1" = leadbus ]; then
        PORT=$PL DATA_DIR="$T/lb" EXOTEL_CALL_DELAY_MS=$2 EXOTEL_RATE_LIMIT_CALLS=${3:-100000} \
            EXOTEL_RATE_LIMIT_WINDOW_MS=${4:-1000} "$LEADBUS" --target=ingest,call-scheduler,dialer \
            >>"$T/leadbus.log" 2>&1 &
        URL="http://127.0.0.1:$PL"
    else
        PORT=$PN EXOTEL_CALL_DELAY_MS=$2 node "$ROOT/bench/baseline/server.js" >>"$T/baseline.log" 2>&1 &
        URL="http://127.0.0.1:$PN"
    fi
    SRV=$!
    wait_url "$URL/healthz"
}
stop() { kill -TERM "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null || true; }
post() { # N PREFIX: N leads, 32 in parallel
    awk -v n="$1" -v prefix="$2" -v url="$URL/leads" -v key=$LEADBUS_KEY \
        -f "$ROOT/tests/integration/lead_requests.awk" >"$T/post.cfg"
    curl -s --no-progress-meter --parallel --parallel-max 32 -K "$T/post.cfg" >/dev/null
}
placed() { curl -s "http://127.0.0.1:$PS/sandbox/exotel/placed" | grep -o '"sid"' | wc -l; }
refused() { # connect requests answered 429 by the sandbox's own limit (requests minus placed)
    echo $(($(curl -s "http://127.0.0.1:$PS/sandbox/requests?api=exotel" | grep -o 'Calls/connect' | wc -l) - $(placed)))
}

echo "== 1. intake: wrk -t2 -c64 -d${SECS}s, distinct leads, calls a day away"
printf '%-9s %10s %8s %10s %10s\n' "" "req/s" "p99 ms" "RSS idle" "RSS after"
for s in leadbus baseline; do
    rm -rf "$T/lb"; sandbox 100000 1000; server $s 86400000
    idle=$(rss $SRV VmRSS)
    LEADS_PER_THREAD=100000000 PHONE_PREFIX=9 wrk -t2 -c64 -d${SECS}s -s "$ROOT/bench/post_leads.lua" "$URL" >"$T/wrk.out"
    r=$(grep RESULT "$T/wrk.out")
    printf '%-9s %10s %8s %8s MB %8s MB\n' $s "$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$r")" \
        "$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$r")" "$idle" "$(rss $SRV VmRSS)"
    stop
done

echo "== 2. 150 leads due at once, Exotel's limit scaled to 50 calls per 5 s"
for s in leadbus baseline; do
    rm -rf "$T/lb"; sandbox 50 5000; server $s 2000 50 5000
    t0=$(date +%s)
    post 150 96000
    until [ "$(placed)" -ge 150 ] || [ $(($(date +%s) - t0)) -ge 25 ]; do sleep 0.5; done
    echo "   $s: $(placed) of 150 calls placed in $(($(date +%s) - t0)) s; $(refused) requests refused with 429 (never retried: lost)" |
        sed 's/; 0 requests refused with 429 (never retried: lost)//'
    stop
done

echo "== 2b. 1,000 leads due at once, no rate limit: calls dispatched per second"
for s in leadbus baseline; do
    rm -rf "$T/lb"; sandbox 100000 1000; server $s 3000
    post 1000 97000
    t0=$(date +%s)
    until [ "$(placed)" -ge 1000 ] || [ $(($(date +%s) - t0)) -ge 30 ]; do sleep 0.2; done
    read -r first last <<<"$(curl -s "http://127.0.0.1:$PS/sandbox/exotel/placed" | grep -o '"createdMs":[0-9]*' |
        cut -d: -f2 | sort -n | sed -n '1p;$p' | paste -sd' ')"
    echo "   $s: $(placed) calls placed, first to last in $((last - first)) ms ($((1000 * $(placed) / (last - first + 1))) calls/s)"
    stop
done

echo "== 3. kill -9 with 100 calls pending (delay 3 s), restart"
for s in leadbus baseline; do
    rm -rf "$T/lb"; sandbox 100000 1000; server $s 3000
    post 100 95000
    kill -9 "$SRV"; wait "$SRV" 2>/dev/null || true
    server $s 3000
    t0=$(date +%s)
    until [ "$(placed)" -ge 100 ] || [ $(($(date +%s) - t0)) -ge 10 ]; do sleep 0.5; done
    echo "   $s: $(placed) of 100 pending calls placed after the kill"
    stop
done
