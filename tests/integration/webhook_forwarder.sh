#!/usr/bin/env bash
# The example subscriber (proto/examples/webhook_forwarder.c) attached to a
# running ingest with no change to it: leads posted while the receiver is
# down arrive once it is up; a SIGKILLed forwarder loses nothing.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
PB=$(free_port); PS=$(free_port)
export BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc"
start ingest env PORT=$PB HTTP_BIND=127.0.0.1 DATA_DIR="$T/ingest" API_KEYS=$KEY "$LEADBUS" --target=ingest
wait_for 10 ingest curl -fsS "http://127.0.0.1:$PB/readyz"
forwarder() {
    start forwarder env WEBHOOK_URL="http://127.0.0.1:$PS/hook" WEBHOOK_DB="$T/fw.db" "$BUILD/webhook_forwarder"
    FW=$LAST_PID
}
post() {
    curl -s -X POST "http://127.0.0.1:$PB/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
        -d "{\"name\":\"Hook $1\",\"email\":\"hook$1@example.com\"}" | grep -o 'ld_[0-9a-f]*'
}
forwarder
for i in 1 2 3; do post $i >>"$T/posted"; done
refused() { grep -q "Webhook refused a lead; will retry" "$T/forwarder.log"; }
wait_for 10 "the forwarder to find the receiver down" refused
start sink "$BUILD/http_sink" "$PS" "$T/hook.jsonl"
delivered() { [ "$(grep -o 'ld_[0-9a-f]*' "$T/hook.jsonl" 2>/dev/null | sort -u | wc -l)" -ge "$1" ]; }
wait_for 20 "three leads at the webhook" delivered 3
kill -9 "$FW"; wait "$FW" 2>/dev/null || true
for i in 4 5; do post $i >>"$T/posted"; done
forwarder
wait_for 20 "five leads at the webhook" delivered 5
for id in $(cat "$T/posted"); do
    grep -q "$id" "$T/hook.jsonl" || fail "lead $id not delivered"
done
grep -q '"content_type":"application/json"' "$T/hook.jsonl" || fail "not JSON"
echo "webhook forwarder: $(sort -u "$T/posted" | wc -l) leads posted, all delivered ($(wc -l <"$T/hook.jsonl") POSTs, at least once each) across a receiver outage and a SIGKILL"
kill -TERM "$FW"; wait_pid 10 "$FW"
