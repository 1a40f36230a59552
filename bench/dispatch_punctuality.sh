#!/usr/bin/env bash
# Call dispatch punctuality and restart time, on loopback against the sandbox.
#
# 1. PENDING calls pending a day ahead, then DUE leads posted in a burst with a
#    3 s delay, posted at DUE per second so they fall due within one second, and the
#    rate limit lifted: lateness from each call's due time
#    (its call.scheduled event) to the sandbox receiving its connect request,
#    p50/p99/max, and the RSS of the ingest+call-scheduler+dialer process.
# 2. RESTART_PENDING calls pending; call-scheduler+dialer stopped; one more
#    lead arrives (ingest keeps running); call-scheduler+dialer start again:
#    time from exec to the sandbox receiving that call's connect, median of 5,
#    and the process's peak RSS with that many pending.
# Usage: bench/dispatch_punctuality.sh [PENDING] [DUE] [RESTART_PENDING]   (DUE at most 9,999)
# Needs wrk and a build in ./build (or BUILD=...). Traffic stays on 127.0.0.1.
set -euo pipefail
PENDING=${1:-100000}
DUE=${2:-2000}
RESTART_PENDING=${3:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LEADBUS=${BUILD:-$ROOT/build}/leadbus
T=$(mktemp -d /tmp/leadbus-punct.XXXXXX)
export LEADBUS_KEY=bench-key-0123456789abcdef
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP_T:-}" ] || rm -rf "$T"' EXIT
PA=$((20000 + RANDOM % 10000)); PB=$((PA + 1)); PC=$((PA + 2))

wait_url() { until curl -fs "$1" >/dev/null; do sleep 0.05; done; }
rss() { awk -v k="$2:" '$1 == k {printf "%.0f", $2 / 1024}' "/proc/$1/status"; } # MiB
percentile() { sort -n | awk -v p="$1" '{a[NR] = $1} END {i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print a[i]}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# the sandbox: no rate limit, a long ring so callbacks stay out of the measurement
API_KEYS=$LEADBUS_KEY PORT=$PA HTTP_BIND=127.0.0.1 DATA_DIR="$T/sb" LOG_LEVEL=warn \
    SANDBOX_EXOTEL_RATE_LIMIT=100000 SANDBOX_EXOTEL_RATE_WINDOW_MS=1000 SANDBOX_RING_MS=600000 \
    SANDBOX_REQUEST_LOG=$((DUE + 1000)) "$LEADBUS" --target=sandbox >"$T/sandbox.log" 2>&1 &
wait_url "http://127.0.0.1:$PA/healthz"
export API_KEYS=$LEADBUS_KEY HTTP_BIND=127.0.0.1 LOG_LEVEL=warn CALL_HOURS=always \
    EXOTEL_BASE_URL="http://127.0.0.1:$PA/sandbox/exotel" EXOTEL_RATE_LIMIT_CALLS=100000 \
    EXOTEL_RATE_LIMIT_WINDOW_MS=1000 \
    BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" \
    BUS_CALL_SCHEDULER_PUB="ipc://$T/s.ipc" BUS_CALL_SCHEDULER_REPLAY="ipc://$T/sr.ipc" \
    BUS_DIALER_PUB="ipc://$T/d.ipc" BUS_DIALER_REPLAY="ipc://$T/dr.ipc"

post() { # N PREFIX PORT: about N leads (wrk, 2 threads); sets ACCEPTED to the 202s counted
    # wrk waits out -d even after its threads stop: give it what the leads need at >= 8,000/s
    LEADS_PER_THREAD=$(($1 / 2)) PHONE_PREFIX=$2 wrk -t2 -c32 -d$(($1 / 8000 + 3))s \
        -s "$ROOT/bench/post_leads.lua" \
        "http://127.0.0.1:$3" >"$T/wrk.out"
    grep -q "non2xx=0" "$T/wrk.out" || { echo "wrk: $(cat "$T/wrk.out")" >&2; exit 1; }
    ACCEPTED=$(sed -n 's/^ACCEPTED=//p' "$T/wrk.out")
    [ "${ACCEPTED:-0}" -gt 0 ] || { echo "wrk counted no accepted lead (use N >= 1000)" >&2; exit 1; }
}
post_exact() { # N PREFIX PORT: exactly N leads (curl), paced to spread over one second
    awk -v n="$1" -v prefix="$2" -v url="http://127.0.0.1:$3/leads" -v key=$LEADBUS_KEY \
        -f "$ROOT/tests/integration/lead_requests.awk" >"$T/post.cfg"
    curl -s --no-progress-meter --rate "$1/s" -K "$T/post.cfg" >"$T/codes" # serial: --rate paces only those
    [ "$(grep -c '^202$' "$T/codes")" -eq "$1" ] || { echo "not all accepted" >&2; exit 1; }
}
scheduled() { # N: wait until the call-scheduler's stream holds N call.scheduled events
    timeout 900 "$LEADBUS" tap --topic=call.scheduled --count="$1" call-scheduler >"$T/scheduled.jsonl"
}
connects() {
    curl -s "http://127.0.0.1:$PA/sandbox/requests?api=exotel" |
        grep -o '"ts":[0-9]*,"method":"POST","path":"[^"]*/Calls/connect[^"]*","summary":"[^"]*"' |
        sed -E 's/^"ts":([0-9]+),.*CustomField=([A-Za-z0-9_]*).*/\1 \2/'
}

# ---- 1. punctuality
echo "== punctuality: $PENDING pending a day ahead, then $DUE due in a burst"
svc() { # DELAY_MS: ingest, call-scheduler and dialer in one process
    PORT=$PB DATA_DIR="$T/p" EXOTEL_CALL_DELAY_MS=$1 "$LEADBUS" --target=ingest,call-scheduler,dialer \
        >>"$T/svc.log" 2>&1 &
    SVC=$!
    wait_url "http://127.0.0.1:$PB/readyz"
}
svc 86400000
t=$(date +%s)
post "$PENDING" 9 $PB
scheduled "$ACCEPTED"
echo "   $ACCEPTED leads posted and scheduled in $(($(date +%s) - t)) s"
kill -TERM $SVC; wait $SVC || true
svc 3000
post_exact "$DUE" 70000 $PB
until [ "$(connects | wc -l)" -ge "$DUE" ]; do sleep 0.2; done
# The burst's calls are the earliest due: the first DUE of the pending list (dispatched included).
curl -s -H "X-API-Key: $LEADBUS_KEY" "http://127.0.0.1:$PB/calls?state=pending&limit=$DUE" |
    grep -o '"callId":"[^"]*","leadId":"[^"]*","attempt":1,"state":"dispatched","dueAt":[0-9]*' |
    sed -E 's/"callId":"([^"]*)".*"dueAt":([0-9]+)/\1 \2/' | sort >"$T/due"
connects | awk '{print $2, $1}' | sort >"$T/arrived"
join "$T/due" "$T/arrived" | awk '{print $3 - $2}' >"$T/late"
[ "$(wc -l <"$T/late")" -eq "$DUE" ] || { echo "joined $(wc -l <"$T/late") of $DUE calls" >&2; exit 1; }
spread=$(awk '{print $2}' "$T/due" | sort -n | sed -n '1p;$p' | paste -sd' ' | awk '{print $2 - $1}')
echo "   $DUE calls due within $spread ms, $PENDING others pending"
echo "   lateness (due -> sandbox receives the connect): p50 $(percentile 50 <"$T/late") ms," \
    "p99 $(percentile 99 <"$T/late") ms, max $(percentile 100 <"$T/late") ms"
echo "   RSS of ingest+call-scheduler+dialer: $(rss $SVC VmRSS) MiB (peak $(rss $SVC VmHWM) MiB)"
kill -TERM $SVC; wait $SVC || true

# ---- 2. restart with many pending
echo "== restart: $RESTART_PENDING pending, then call-scheduler+dialer restarted with one call due"
PORT=$PB DATA_DIR="$T/r" "$LEADBUS" --target=ingest >>"$T/ingest.log" 2>&1 &
ING=$!
wait_url "http://127.0.0.1:$PB/readyz"
sched() { # DELAY_MS
    PORT=$PC DATA_DIR="$T/r" EXOTEL_CALL_DELAY_MS=$1 "$LEADBUS" --target=call-scheduler,dialer \
        >>"$T/sched.log" 2>&1 &
    SCHED=$!
}
rm -f "$T/scheduled.jsonl"
export BUS_CALL_SCHEDULER_PUB="ipc://$T/s2.ipc" BUS_CALL_SCHEDULER_REPLAY="ipc://$T/sr2.ipc"
sched 86400000
t=$(date +%s)
post "$RESTART_PENDING" 8 $PB
scheduled "$ACCEPTED"
echo "   $ACCEPTED leads posted and scheduled in $(($(date +%s) - t)) s;" \
    "peak RSS while scheduling them $(rss $SCHED VmHWM) MiB"
kill -TERM $SCHED; wait $SCHED || true
for i in 1 2 3 4 5; do
    before=$(connects | wc -l)
    curl -fs -X POST "http://127.0.0.1:$PB/leads" -H "Content-Type: application/json" \
        -H "X-API-Key: $LEADBUS_KEY" -d "{\"name\":\"Restart $i\",\"phone\":\"799999999$i\"}" >/dev/null
    t0=$(date +%s%3N)
    sched 0
    until [ "$(connects | wc -l)" -gt "$before" ]; do sleep 0.01; done
    at=$(connects | tail -1 | cut -d' ' -f1)
    echo $((at - t0)) >>"$T/restart"
    echo "   run $i: exec -> first dispatch at the sandbox $((at - t0)) ms, RSS $(rss $SCHED VmRSS) MiB"
    kill -TERM $SCHED; wait $SCHED || true
done
echo "   restart to first dispatch with $RESTART_PENDING pending: median $(median <"$T/restart") ms"
