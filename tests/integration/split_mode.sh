#!/usr/bin/env bash
# Split mode, the way pods run it: sandbox, two ingest replicas (each its own
# stream), zoho-sync, call-scheduler, dialer and stats as seven processes over
# tcp://127.0.0.1; the subscribers dial both ingest replicas. Leads keep coming
# (each retried with its Idempotency-Key until accepted) while every service
# is SIGKILLed in turn and restarted. Afterwards: every lead is in Zoho once,
# every call placed once and completed, and /exotel/stats agrees with the
# sandbox's own records.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
N=120
declare -A PORT PID
for svc in sandbox ingest ingest2 zoho-sync call-scheduler dialer stats; do PORT[$svc]=$(free_port); done
bus=$(free_port)
export API_KEYS=$KEY HTTP_BIND=127.0.0.1 CALL_HOURS=always EXOTEL_CALL_DELAY_MS=500 \
    SANDBOX_RING_MS=200 SANDBOX_OUTCOME_MODE=last-digit SANDBOX_ZOHO_MINT_LIMIT=100 \
    EXOTEL_RECONCILE_DELAY_MS=300 EXOTEL_RECONCILE_WINDOW_MS=2000 EXOTEL_RETRY_DELAYS_MS=300 \
    EXOTEL_CALLBACK_GRACE_MS=2000 EXOTEL_HTTP_TIMEOUT_MS=2000 ZOHO_TIMEOUT_MS=2000 \
    EXOTEL_BASE_URL="http://127.0.0.1:${PORT[sandbox]}/sandbox/exotel" \
    ZOHO_ACCOUNTS_URL="http://127.0.0.1:${PORT[sandbox]}/sandbox/zoho" \
    ZOHO_API_DOMAIN="http://127.0.0.1:${PORT[sandbox]}/sandbox/zoho" \
    PUBLIC_BASE_URL="http://127.0.0.1:${PORT[dialer]}"
i=0
for pub in INGEST ZOHO_SYNC CALL_SCHEDULER DIALER; do  # every publisher's endpoints, as a pod's env
    export "BUS_${pub}_PUB=tcp://127.0.0.1:$((bus + 2 * i))" "BUS_${pub}_REPLAY=tcp://127.0.0.1:$((bus + 2 * i + 1))"
    i=$((i + 1))
done
# Two ingest replicas: each listens on its own endpoints and names its own stream; everyone
# else dials both (comma-separated, in the same order).
I1P="tcp://127.0.0.1:$((bus + 8))"; I1R="tcp://127.0.0.1:$((bus + 9))"
I0P=$BUS_INGEST_PUB; I0R=$BUS_INGEST_REPLAY
export BUS_INGEST_PUB="$I0P,$I1P" BUS_INGEST_REPLAY="$I0R,$I1R"
up() {
    local extra=()
    case $1 in
    ingest) extra=(BUS_INGEST_NAME=ingest-0 BUS_INGEST_PUB=$I0P BUS_INGEST_REPLAY=$I0R) ;;
    ingest2) extra=(BUS_INGEST_NAME=ingest-1 BUS_INGEST_PUB=$I1P BUS_INGEST_REPLAY=$I1R) ;;
    esac
    start "$1" env PORT="${PORT[$1]}" DATA_DIR="$T/$1" "${extra[@]}" "$LEADBUS" --target="${1%2}"
    PID[$1]=$LAST_PID
}
for svc in sandbox ingest ingest2 zoho-sync call-scheduler dialer stats; do up $svc; done
for svc in sandbox ingest ingest2 zoho-sync call-scheduler dialer stats; do
    wait_for 20 "$svc ready" curl -fsS "http://127.0.0.1:${PORT[$svc]}/readyz"
done

# The poster: each lead is retried with the same Idempotency-Key until it gets its 202.
poster() {
    for n in $(seq 1 $N); do
        local tries=0
        local replica=ingest
        [ $((n % 2)) -eq 0 ] && replica=ingest2 # alternate between the two replicas
        until curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
            "http://127.0.0.1:${PORT[$replica]}/leads" -H "Content-Type: application/json" \
            -H "X-API-Key: $KEY" -H "Idempotency-Key: split-$n" \
            -d "{\"name\":\"Split $n\",\"phone\":\"94000$(printf '%04d' "$n")4\"}" | grep -q 202; do
            tries=$((tries + 1))
            [ $tries -lt 400 ] || { echo "lead $n never accepted" >&2; exit 1; }
            sleep 0.05
        done
        echo "$n" >"$T/posted" # progress, for the kills below
        sleep 0.05
    done
}
poster >"$T/poster.out" 2>&1 &
POSTER=$!
PIDS+=("$POSTER")
echo 0 >"$T/posted"
posted_at_least() { [ "$(cat "$T/posted")" -ge "$1" ]; }
k=0
for svc in ingest zoho-sync call-scheduler dialer stats; do
    k=$((k + 20)) # leads keep arriving between the kills: one kill per 20 accepted
    wait_for 60 "$k leads accepted" posted_at_least $k
    kill -9 "${PID[$svc]}"; wait "${PID[$svc]}" 2>/dev/null || true
    echo "SIGKILLed $svc"
    up $svc
done
wait_pid 120 "$POSTER" || fail "the poster failed: $(cat "$T/poster.out")"

S="http://127.0.0.1:${PORT[stats]}"
SB="http://127.0.0.1:${PORT[sandbox]}"
settled() {
    curl -s "$S/exotel/stats" | grep -q "\"pending\":0,\"total\":$N,.*\"completed\":$N,.*\"unknown\":0},\"attempts\":$N,.*\"received\":$N,\"synced\":$N"
}
wait_for 120 "every call completed and every lead synced, per stats" settled
connects=$(curl -s "$SB/sandbox/requests?api=exotel" | grep -o 'Calls/connect[^"]*","summary":"[^"]*CustomField=[a-z0-9_]*' | grep -o 'CustomField=.*' | sort)
distinct=$(uniq <<<"$connects" | wc -l); total=$(wc -l <<<"$connects")
zoho=$(curl -s "$SB/sandbox/zoho/records?module=Leads" | grep -o '"Leadbus_Id":"ld_[0-9a-f]*"' | sort)
echo "split mode: $N leads; $total connect requests for $distinct calls; $(wc -l <<<"$zoho") Zoho records for $(uniq <<<"$zoho" | wc -l) leads"
echo "stats: $(curl -s "$S/exotel/stats")"
[ "$total" -eq $N ] && [ "$distinct" -eq $N ] || fail "calls lost or placed twice"
[ "$(wc -l <<<"$zoho")" -eq $N ] && [ "$(uniq <<<"$zoho" | wc -l)" -eq $N ] || fail "Zoho records lost or duplicated"
streams=$(curl -s "$S/metrics" | grep -o 'publisher="ingest-[01]",topic="lead.created"' | sort -u | wc -l)
[ "$streams" -eq 2 ] || fail "stats should follow two ingest streams, sees $streams"
for svc in ingest ingest2 zoho-sync call-scheduler dialer stats; do
    kill -TERM "${PID[$svc]}"; wait_pid 15 "${PID[$svc]}"
done
