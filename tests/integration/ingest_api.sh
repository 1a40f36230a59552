#!/usr/bin/env bash
# ingest: every error path of POST /leads, Unicode, idempotent retries,
# 10,000 concurrent distinct leads each present once in the outbox, and a
# SIGKILL right after a 202 that loses nothing. Runs `leadbus --target=ingest`
# on loopback and reads its outbox back through `leadbus tap`.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
PORT_N=$(free_port)
URL="http://127.0.0.1:$PORT_N/leads"
export API_KEYS=$KEY PORT=$PORT_N HTTP_BIND=127.0.0.1 DATA_DIR="$T/data" MAX_BODY_BYTES=4096 \
    BUS_INGEST_PUB="ipc://$T/ingest.ipc" BUS_INGEST_REPLAY="ipc://$T/ingest-replay.ipc" LOG_LEVEL=warn

start_ingest() {
    start ingest "$LEADBUS" --target=ingest
    INGEST=$LAST_PID
    wait_for 10 "ingest to answer" curl -fsS "http://127.0.0.1:$PORT_N/readyz"
}

# post BODY [extra curl args...]: prints "CODE BODY"
post() {
    local body=$1; shift
    curl -sS -o "$T/resp" -w '%{http_code}' -X POST "$URL" -H "Content-Type: application/json" \
        -H "X-API-Key: ${AUTH:-$KEY}" "$@" --data-binary "$body"
    echo " $(cat "$T/resp")"
}

expect() { # expect CODE PATTERN -- post args...
    local code=$1 pat=$2; shift 3
    local out; out=$(post "$@")
    [[ "$out" == "$code "* ]] || fail "expected $code, got: $out (for $1)"
    grep -q -- "$pat" <<<"$out" || fail "answer lacks '$pat': $out"
}

start_ingest
GOOD='{"source":"Website","name":"Test Lead","phone":"9876543210","email":"test@example.com"}'
accepted=0

# --- refusals: each names the problem, none writes anything
code=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST "$URL" -H "Content-Type: application/json" -d "$GOOD")
[ "$code" = 401 ] && grep -q '"code":"unauthorized"' "$T/resp" || fail "no key: $code"
AUTH=wrong-key-0123456789abcdef expect 401 unauthorized -- "$GOOD"
code=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST "$URL" -H "Content-Type: text/plain" -H "X-API-Key: $KEY" -d "$GOOD")
[ "$code" = 415 ] && grep -q '"code":"unsupported_media_type"' "$T/resp" || fail "text/plain: $code"
big=$(head -c 5000 /dev/zero | tr '\0' 'x')
expect 413 '"code":"body_too_large"' -- "{\"name\":\"A\",\"notes\":\"$big\"}"
expect 400 'malformed JSON near byte 8' -- '{"name":}'
expect 400 'must be a JSON object' -- '["a"]'
expect 422 '"name":"is required' -- '{"phone":"9876543210"}'
expect 422 '"phone":"phone or email is required"' -- '{"name":"A"}'
expect 422 '"email":"is not a valid email address"' -- '{"name":"A","phone":"1","email":"x@"}'
expect 422 '"phone":"is not a valid phone number"' -- '{"name":"A","phone":"1","email":"x@"}'
expect 422 '"extra":"must be an object"' -- '{"name":"A","email":"a@b.co","extra":3}'
expect 422 '"name":"must be valid UTF-8"' -- "$(printf '{"name":"\xff\xfe","email":"a@b.co"}')"
expect 400 'Idempotency-Key must be' -- "$GOOD" -H "Idempotency-Key: $(head -c 300 /dev/zero | tr '\0' k)"

# --- acceptance
expect 202 '"success":true,"leadId":"ld_' -- "$GOOD"; accepted=$((accepted + 1))
expect 202 '"warnings":\["phone: not a valid phone number' -- '{"name":"Émile Zoë 日本","phone":"123","email":"e@x.fr"}'
accepted=$((accepted + 1))

# --- idempotency: the retry gets the first answer and creates nothing
first=$(post "$GOOD" -H "Idempotency-Key: retry-1")
again=$(post "$GOOD" -H "Idempotency-Key: retry-1")
[[ "$first" == 202* ]] && [ "$first" = "$again" ] || fail "idempotent retry differs: $first / $again"
accepted=$((accepted + 1))
expect 422 idempotency_key_reused -- '{"name":"Other","email":"o@x.io"}' -H "Idempotency-Key: retry-1"

# --- 10,000 distinct leads, 64 at a time
N=10000
awk -v n=$N -v url="$URL" -v key=$KEY 'BEGIN {
    for (i = 1; i <= n; i++) {
        printf "url = \"%s\"\nheader = \"Content-Type: application/json\"\n", url
        printf "header = \"X-API-Key: %s\"\n", key
        printf "data = \"{\\\"name\\\":\\\"Bulk %d\\\",\\\"phone\\\":\\\"98%08d\\\",\\\"source\\\":\\\"bulk\\\"}\"\n", i, i
        printf "output = \"/dev/null\"\nwrite-out = \"%%{http_code}\\\\n\"\n"
        if (i < n) print "next"
    }}' >"$T/bulk.cfg"
t0=$(date +%s%N)
curl -s --no-progress-meter --parallel --parallel-max 64 -K "$T/bulk.cfg" >"$T/codes" 2>"$T/curl.err"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok=$(grep -c '^202$' "$T/codes" || true)
echo "bulk: $ok of $N answered 202 in $ms ms (curl, 64 in parallel)"
[ "$ok" -eq $N ] || fail "bulk: only $ok of $N accepted: $(sort "$T/codes" | uniq -c)"
accepted=$((accepted + N))

# --- SIGKILL right after a 202: the lead must survive
out=$(post '{"name":"Last One","phone":"9812345678"}')
kill -9 "$INGEST"
[[ "$out" == 202* ]] || fail "last post: $out"
last_id=$(grep -o 'ld_[0-9a-f]*' <<<"$out")
accepted=$((accepted + 1))
wait "$INGEST" 2>/dev/null || true
start_ingest

# --- the outbox holds exactly the accepted leads, each once, in order
timeout 60 "$LEADBUS" tap --count=$accepted "$BUS_INGEST_PUB,$BUS_INGEST_REPLAY" >"$T/events"
events=$(wc -l <"$T/events")
distinct=$(grep -o '"lead_id":"ld_[0-9a-f]*"' "$T/events" | sort -u | wc -l)
echo "outbox: $events lead.created events, $distinct distinct leads, $accepted accepted"
[ "$events" -eq "$accepted" ] && [ "$distinct" -eq "$accepted" ] || fail "outbox does not match the 202s"
grep -q "\"lead_id\":\"$last_id\"" "$T/events" || fail "lead accepted before SIGKILL is missing"
grep -q '"first_name":"Émile Zoë","last_name":"日本"' "$T/events" || fail "Unicode name altered"
grep -q '"phone_dial":"09876543210"' "$T/events" || fail "dial form missing"
grep -q '"seq":'$accepted',' "$T/events" || fail "stream is not numbered 1..$accepted"
# no phone number in the clear in the logs
if grep -q "9876543210\|9812345678" "$T/ingest.log"; then fail "a phone number reached the log"; fi
kill -TERM "$INGEST"; wait_pid 10 "$INGEST"
