# A leadbus cluster on loopback for the split-mode and chaos tests. The sandbox
# always runs alone (Exotel's and Zoho's records must outlive every crash).
# TOPOLOGY=split: two ingest replicas (each its own stream), zoho-sync,
# call-scheduler, dialer and stats, one process each, over tcp://127.0.0.1.
# TOPOLOGY=single: every service in one process. Settings in the environment
# before sourcing this file override the defaults below. CLUSTER_TLS=1 (split only): every bus
# URL is tls+tcp://127.0.0.1, each process with its own certificate from deploy/bus-certs.sh.
. "$(dirname "$0")/lib.sh"
BUS_CERTS="$(cd "$(dirname "$0")/../.." && pwd)/deploy/bus-certs.sh"
cd "$T"
KEY=test-key-0123456789abcdef
TOPOLOGY=${TOPOLOGY:-split}
declare -A PORT PID TARGET
if [ "$TOPOLOGY" = split ]; then
    SERVICES=(ingest ingest2 zoho-sync call-scheduler dialer stats)
    for svc in "${SERVICES[@]}"; do TARGET[$svc]=${svc%2}; PORT[$svc]=$(free_port); done
else
    SERVICES=(core)
    TARGET[core]=ingest,zoho-sync,call-scheduler,dialer,stats
    PORT[core]=$(free_port)
    for svc in ingest zoho-sync call-scheduler dialer stats; do PORT[$svc]=${PORT[core]}; done
fi
PORT[sandbox]=$(free_port)
TARGET[sandbox]=sandbox
SB="http://127.0.0.1:${PORT[sandbox]}"
S="http://127.0.0.1:${PORT[stats]}"
# EXOTEL_RECONCILE_WINDOW_MS: how long an attempt of unknown outcome may go unseen in bulk call
# details before it counts as not placed. Exotel (and the sandbox) leave calls in progress out of
# that list, so the window must outlast a call plus its callback's delivery; with a 2.5 s window a
# SIGKILLed dialer restarting under ASan took a completed call for one never placed (stats and the
# sandbox then disagreed by one). Production's default is ring + time limit + 120 s.
export API_KEYS=$KEY HTTP_BIND=127.0.0.1 CALL_HOURS=always EXOTEL_CALL_DELAY_MS=${EXOTEL_CALL_DELAY_MS:-500} \
    SANDBOX_RING_MS=200 SANDBOX_ZOHO_MINT_LIMIT=1000 SANDBOX_HANG_MS=1500 SANDBOX_REQUEST_LOG=100000 \
    EXOTEL_RECONCILE_DELAY_MS=300 EXOTEL_RECONCILE_WINDOW_MS=${EXOTEL_RECONCILE_WINDOW_MS:-10000} EXOTEL_RETRY_DELAYS_MS=300 \
    EXOTEL_CALLBACK_GRACE_MS=2000 EXOTEL_HTTP_TIMEOUT_MS=1000 ZOHO_TIMEOUT_MS=1000 ZOHO_BACKOFF_MAX_MS=1000 \
    EXOTEL_BASE_URL="$SB/sandbox/exotel" ZOHO_ACCOUNTS_URL="$SB/sandbox/zoho" ZOHO_API_DOMAIN="$SB/sandbox/zoho" \
    PUBLIC_BASE_URL="http://127.0.0.1:${PORT[dialer]}"
SCHEME=tcp
if [ -n "${CLUSTER_TLS:-}" ]; then # one process per name: TOPOLOGY=single would need one cert for all
    [ "$TOPOLOGY" = split ] || fail "CLUSTER_TLS=1 needs TOPOLOGY=split"
    "$BUS_CERTS" "$T/certs" ingest-0 ingest-1 >/dev/null
    SCHEME=tls+tcp
    export BUS_TLS_CA="$T/certs/ca.crt" BUS_INGEST_NAME=ingest-0,ingest-1 # the replicas, in order
fi
bus=$(free_port)
i=0
for pub in INGEST ZOHO_SYNC CALL_SCHEDULER DIALER; do # every publisher's endpoints, as a pod's env
    export "BUS_${pub}_PUB=$SCHEME://127.0.0.1:$((bus + 2 * i))" "BUS_${pub}_REPLAY=$SCHEME://127.0.0.1:$((bus + 2 * i + 1))"
    i=$((i + 1))
done
# The second ingest replica listens on its own endpoints; everyone else dials both, in order.
I0P=$BUS_INGEST_PUB I0R=$BUS_INGEST_REPLAY
I1P="$SCHEME://127.0.0.1:$((bus + 8))" I1R="$SCHEME://127.0.0.1:$((bus + 9))"
[ "$TOPOLOGY" = split ] && export BUS_INGEST_PUB="$I0P,$I1P" BUS_INGEST_REPLAY="$I0R,$I1R"

up() { # SERVICE
    local extra=()
    case $1 in
    ingest) extra=(BUS_INGEST_NAME=ingest-0 BUS_INGEST_PUB=$I0P BUS_INGEST_REPLAY=$I0R) ;;
    ingest2) extra=(BUS_INGEST_NAME=ingest-1 BUS_INGEST_PUB=$I1P BUS_INGEST_REPLAY=$I1R) ;;
    esac
    if [ -n "${CLUSTER_TLS:-}" ]; then # each process's own certificate; the sandbox has no bus
        local cert=$1
        case $1 in ingest) cert=ingest-0 ;; ingest2) cert=ingest-1 ;; sandbox) cert=stats ;; esac
        extra+=(BUS_TLS_CERT="$T/certs/$cert.crt" BUS_TLS_KEY="$T/certs/$cert.key")
    fi
    start "$1" env PORT="${PORT[$1]}" DATA_DIR="$T/$1" "${extra[@]}" "$LEADBUS" --target="${TARGET[$1]}"
    PID[$1]=$LAST_PID
}
cluster_up() {
    for svc in sandbox "${SERVICES[@]}"; do up "$svc"; done
    for svc in sandbox "${SERVICES[@]}"; do
        wait_for 20 "$svc ready" curl -fsS "http://127.0.0.1:${PORT[$svc]}/readyz"
    done
}
cluster_down() {
    for svc in "${SERVICES[@]}"; do kill -TERM "${PID[$svc]}"; wait_pid 15 "${PID[$svc]}"; done
}

# poster N PHONE_PREFIX(5 digits): N leads, alternating between the ingest replicas, each
# retried with its Idempotency-Key until accepted, POST_GAP_S apart; progress in $T/posted.
poster() {
    local ingests=(ingest)
    [ "$TOPOLOGY" = split ] && ingests=(ingest ingest2)
    for n in $(seq 1 "$1"); do
        local tries=0 replica=${ingests[$((n % ${#ingests[@]}))]}
        until curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
            "http://127.0.0.1:${PORT[$replica]}/leads" -H "Content-Type: application/json" \
            -H "X-API-Key: $KEY" -H "Idempotency-Key: lead-$n" \
            -d "{\"name\":\"Lead $n\",\"phone\":\"$2$(printf '%04d' "$n")4\",\"email\":\"l$n@example.com\"}" |
            grep -c 202 >/dev/null; do
            tries=$((tries + 1))
            [ $tries -lt 600 ] || { echo "lead $n never accepted" >&2; exit 1; }
            sleep 0.05 # the ingest replica is restarting: try again shortly
        done
        echo "$n" >"$T/posted"
        [ -z "${POST_GAP_S:-}" ] || sleep "$POST_GAP_S" # pacing: leads keep arriving through the chaos
    done
}
posted_at_least() { [ "$(cat "$T/posted" 2>/dev/null || echo 0)" -ge "$1" ]; }

# The sandbox's own records.
placed() { # "customField status" per call the simulated Exotel placed
    curl -s "$SB/sandbox/exotel/placed" | grep -o '"customField":"[^"]*","status":"[^"]*"' |
        sed -E 's/"customField":"([^"]*)","status":"([^"]*)"/\1 \2/'
}
connect_times() { # arrival ms of every connect request
    curl -s "$SB/sandbox/requests?api=exotel" | grep -o '"ts":[0-9]*,"method":"POST","path":"[^"]*/Calls/connect' |
        sed -E 's/"ts":([0-9]+),.*/\1/'
}
zoho_ids() { curl -s "$SB/sandbox/zoho/records?module=Leads" | grep -o '"Leadbus_Id":"ld_[0-9a-f]*"'; }
