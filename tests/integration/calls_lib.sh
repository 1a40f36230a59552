# Helpers for the call-scheduler/dialer tests: a sandbox in its own process
# (Exotel's records outlive the service's crashes), the services in another,
# and readers for what the sandbox received.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
PA=$(free_port); PB=$(free_port)
SBURL="http://127.0.0.1:$PA"
SVC_URL="http://127.0.0.1:$PB"

# start_sandbox [VAR=value...]: the simulated Exotel, ringing 200 ms, outcome by last digit
# (1 busy, 2 no-answer, 3 failed, else completed).
start_sandbox() {
    start sandbox env PORT=$PA HTTP_BIND=127.0.0.1 DATA_DIR="$T/sb" API_KEYS=$KEY \
        SANDBOX_RING_MS=200 SANDBOX_OUTCOME_MODE=last-digit SANDBOX_HANG_MS=1500 \
        SANDBOX_REQUEST_LOG=20000 "$@" "$LEADBUS" --target=sandbox
    wait_for 10 sandbox curl -fsS "$SBURL/healthz"
}

export PORT=$PB HTTP_BIND=127.0.0.1 DATA_DIR="$T/svc" API_KEYS=$KEY \
    EXOTEL_BASE_URL="$SBURL/sandbox/exotel" CALL_HOURS=always \
    BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" \
    BUS_CALL_SCHEDULER_PUB="ipc://$T/s.ipc" BUS_CALL_SCHEDULER_REPLAY="ipc://$T/sr.ipc" \
    BUS_DIALER_PUB="ipc://$T/d.ipc" BUS_DIALER_REPLAY="ipc://$T/dr.ipc"

# start_svc [VAR=value...]: ingest, call-scheduler and dialer in one process; sets $SVC.
start_svc() {
    start svc env "$@" "$LEADBUS" --target=ingest,call-scheduler,dialer
    SVC=$LAST_PID
    wait_for 15 "ingest, call-scheduler and dialer" curl -fsS "$SVC_URL/readyz"
}

stop_svc() { kill -TERM "$SVC"; wait_pid 15 "$SVC"; }

# post_lead NAME PHONE: prints the lead id
post_lead() {
    local out
    out=$(curl -s -X POST "$SVC_URL/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
        -d "{\"name\":\"$1\",\"phone\":\"$2\",\"email\":\"lead@example.com\"}")
    grep -o 'ld_[0-9a-f]*' <<<"$out" || fail "post_lead: $out"
}

# connect_log: "ts call_id" per connect request the sandbox received, in arrival order
connect_log() {
    curl -s "$SBURL/sandbox/requests?api=exotel" |
        grep -o '"ts":[0-9]*,"method":"POST","path":"[^"]*/Calls/connect[^"]*","summary":"[^"]*"' |
        sed -E 's/^"ts":([0-9]+),.*CustomField=([A-Za-z0-9_]*).*/\1 \2/'
}
connects_of() { connect_log | awk -v c="$1" '$2 == c' | wc -l; }
has_connects() { [ "$(connects_of "$1")" -ge "$2" ]; }

# call_json CALL_ID: the call's object from GET /calls (pending and done)
call_json() {
    for s in pending done; do
        curl -s -H "X-API-Key: $KEY" "$SVC_URL/calls?state=$s&limit=1000" |
            grep -o "{[^{}]*\"callId\":\"$1\"[^{}]*}" || true
    done
}
call_is() { call_json "$1" | grep -c "$2" >/dev/null; }

# cb_token CALL_ID ATTEMPT: the attempt's callback token, made as SECURITY.md says from the key
# in the dialer's store; attempt_sid / attempt_row CALL_ID ATTEMPT: what the dialer stored
cb_token() {
    local key
    key=$(sqlite3 "$T/svc/dialer.db" "SELECT hex(key) FROM callback_key")
    printf 'leadbus-callback:v1:%s:%s' "$1" "$2" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" |
        awk '{print $NF}'
}
attempt_sid() { sqlite3 "$T/svc/dialer.db" "SELECT coalesce(sid, '') FROM attempts WHERE call_id = '$1' AND attempt = $2"; }
attempt_row() { sqlite3 "$T/svc/dialer.db" "SELECT * FROM attempts WHERE call_id = '$1' AND attempt = $2"; }

# post_many N PREFIX: N leads in parallel, phones PREFIX (5 digits) + 4-digit index + 4
# (the sandbox completes them); fails unless every one gets a 202.
post_many() {
    awk -v n="$1" -v prefix="$2" -v url="$SVC_URL/leads" -v key=$KEY \
        -f "$HERE/lead_requests.awk" >"$T/bulk.cfg"
    curl -s --no-progress-meter --parallel --parallel-max 32 -K "$T/bulk.cfg" >"$T/codes"
    [ "$(grep -c '^202$' "$T/codes")" -eq "$1" ] || fail "not every lead was accepted: $(sort "$T/codes" | uniq -c)"
}
connect_count() { connect_log | wc -l; }
at_least_connects() { [ "$(connect_count)" -ge "$1" ]; }
none_pending() { curl -s -H "X-API-Key: $KEY" "$SVC_URL/calls?state=pending" | grep -c '"calls":\[\]' >/dev/null; }

# windows_ok LIMIT WINDOW_MS: no WINDOW_MS of the sandbox's arrival times holds more than LIMIT
# connects; prints the tightest window seen.
windows_ok() {
    connect_log | awk '{print $1}' | sort -n | awk -v l="$1" -v w="$2" '
        { t[NR] = $1 }
        END { min = -1
              for (i = 1; i + l <= NR; i++) { d = t[i + l] - t[i]; if (min < 0 || d < min) min = d }
              printf "%d connects; the tightest %d+1 consecutive span %d ms (limit %d per %d ms)\n", NR, l, min, l, w
              exit (min >= 0 && min < w) }'
}
