#!/usr/bin/env bash
# Issue 14, case 6 (readiness): /readyz fails while a provider refuses our credentials (Exotel
# answering 401; Zoho answering INVALID_TOKEN to every fresh token), naming the check, with an
# ERROR line and leadbus_check_ok; a missing bus peer is only "degraded": /readyz stays 200 and
# the dialer's callback route keeps answering, and the degraded entry clears once the peer comes.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
PA=$(free_port); PB=$(free_port)
SA="http://127.0.0.1:$PA"; SB="http://127.0.0.1:$PB"
start sandbox_a env PORT=$PA HTTP_BIND=127.0.0.1 DATA_DIR="$T/sa" API_KEYS=$KEY SANDBOX_ZOHO_MINT_LIMIT=1000 \
    SANDBOX_RING_MS=200 "$LEADBUS" --target=sandbox
start sandbox_b env PORT=$PB HTTP_BIND=127.0.0.1 DATA_DIR="$T/sb" API_KEYS=$KEY "$LEADBUS" --target=sandbox
wait_for 10 "sandbox A" curl -fsS "$SA/healthz"
wait_for 10 "sandbox B" curl -fsS "$SB/healthz"
export HTTP_BIND=127.0.0.1 API_KEYS=$KEY CALL_HOURS=always \
    BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" \
    BUS_ZOHO_SYNC_PUB="ipc://$T/z.ipc" BUS_ZOHO_SYNC_REPLAY="ipc://$T/zr.ipc" \
    BUS_CALL_SCHEDULER_PUB="ipc://$T/s.ipc" BUS_CALL_SCHEDULER_REPLAY="ipc://$T/sr.ipc" \
    BUS_DIALER_PUB="ipc://$T/d.ipc" BUS_DIALER_REPLAY="ipc://$T/dr.ipc"

post_lead() {
    curl -s -X POST "$1/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
        -d '{"name":"Ready Check","phone":"9876543210","email":"r@example.com"}' | grep -c '"success":true' >/dev/null ||
        fail "post to $1"
}
failing_is() { curl -s "$1/readyz" | grep -c "\"status\":\"not ready\",\"failing\":\[$2\]" >/dev/null; }
metric() { curl -s "$1/metrics" | awk -v m="$2" 'index($0, m) == 1 {print $NF}'; }
stop() { kill -TERM "$1"; wait_pid 10 "$1"; }

# --- Exotel answers 401: the dialer is not ready, and says which credentials
P=$(free_port); U="http://127.0.0.1:$P"
start exotel401 env PORT=$P DATA_DIR="$T/e" EXOTEL_ACCOUNT_SID=sandbox EXOTEL_API_KEY=wrong-key \
    EXOTEL_API_TOKEN=wrong-token EXOTEL_BASE_URL="$SA/sandbox/exotel" EXOTEL_ENABLED=true \
    ALLOW_INSECURE_CALLBACKS=true EXOTEL_EXOPHONE=08047000000 EXOTEL_AGENT_NUMBER=08047000001 \
    EXOTEL_CALL_DELAY_MS=300 "$LEADBUS" --target=ingest,call-scheduler,dialer
SVC=$LAST_PID
wait_for 15 "ingest, call-scheduler, dialer" curl -fsS "$U/readyz"
post_lead "$U"
wait_for 20 "/readyz to fail on Exotel's 401" failing_is "$U" '"exotel credentials"'
grep -q "ERROR.*Exotel refuses our credentials (HTTP 401).*EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY, EXOTEL_API_TOKEN" \
    "$T/exotel401.log" || fail "no ERROR line naming the Exotel credentials"
[ "$(metric "$U" 'leadbus_check_ok{check="exotel credentials",kind="ready"}')" = 0 ] || fail "check metric"
[ "$(metric "$U" 'leadbus_ready ')" = 0 ] || fail "leadbus_ready"
grep -q "wrong-key\|wrong-token" "$T/exotel401.log" && fail "a credential reached the log"
echo "Exotel 401: $(curl -s "$U/readyz")"
stop "$SVC"

# --- Zoho refuses every fresh token (INVALID_TOKEN): tokens from A, the CRM is B
P=$(free_port); U="http://127.0.0.1:$P"
start zoho401 env PORT=$P DATA_DIR="$T/z" ZOHO_ACCOUNTS_URL="$SA/sandbox/zoho" ZOHO_API_DOMAIN="$SB/sandbox/zoho" \
    ZOHO_TIMEOUT_MS=1000 ZOHO_BACKOFF_MAX_MS=1000 "$LEADBUS" --target=ingest,zoho-sync
SVC=$LAST_PID
wait_for 15 "ingest, zoho-sync" curl -fsS "$U/readyz"
post_lead "$U"
wait_for 40 "/readyz to fail on Zoho's lasting INVALID_TOKEN" failing_is "$U" '"zoho credentials"'
grep -q "ERROR.*Zoho keeps refusing our access tokens (HTTP 401)" "$T/zoho401.log" || fail "no Zoho ERROR line"
echo "Zoho INVALID_TOKEN: $(curl -s "$U/readyz")"
stop "$SVC"

# --- a missing bus peer is degraded, not unready: the callback route stays in service
P=$(free_port); U="http://127.0.0.1:$P"
start dialer env PORT=$P DATA_DIR="$T/d" EXOTEL_BASE_URL="$SA/sandbox/exotel" "$LEADBUS" --target=dialer
DIALER=$LAST_PID
wait_for 10 "dialer" curl -fsS "$U/healthz"
body=$(curl -s -w ' %{http_code}' "$U/readyz")
[[ "$body" == *'"status":"ready","failing":[],"degraded":["dialer: call-scheduler stream"]} 200' ]] ||
    fail "dialer without its call-scheduler: $body"
code=$(curl -s -o "$T/cb" -w '%{http_code}' -X POST "$U/exotel/callback?call=call_x&attempt=1&token=nope" \
    -H "Content-Type: application/json" -d '{"CallSid":"x","Status":"completed"}')
[ "$code" = 401 ] || fail "the callback route answered $code while the peer is away: $(cat "$T/cb")"
[ "$(metric "$U" 'leadbus_check_ok{check="dialer: call-scheduler stream",kind="degraded"}')" = 0 ] ||
    fail "degraded check metric"
[ "$(metric "$U" 'leadbus_ready ')" = 1 ] || fail "leadbus_ready while only degraded"
Q=$(free_port)
start scheduler env PORT=$Q DATA_DIR="$T/s" "$LEADBUS" --target=call-scheduler
SCHED=$LAST_PID
clear() { curl -s "$U/readyz" | grep -c '"status":"ready","failing":\[\],"degraded":\[\]' >/dev/null; }
wait_for 15 "the dialer's degraded entry to clear once the call-scheduler runs" clear
body=$(curl -s "http://127.0.0.1:$Q/readyz")
[[ "$body" == *'"status":"ready"'*'"degraded":["call-scheduler: ingest streams"]'* ]] ||
    fail "call-scheduler without ingest: $body"
stop "$SCHED"; stop "$DIALER"

# ingest has no upstream peer: ready, nothing degraded.
P=$(free_port); U="http://127.0.0.1:$P"
start ingest env PORT=$P DATA_DIR="$T/i" "$LEADBUS" --target=ingest
ING=$LAST_PID
wait_for 10 ingest curl -fsS "$U/healthz"
body=$(curl -s "$U/readyz")
[ "$body" = '{"status":"ready","failing":[],"degraded":[]}' ] || fail "ingest alone: $body"
stop "$ING"
echo "readiness: ok"
