#!/usr/bin/env bash
# The SMS follow-up names the agent who called (issue 20): a stand-in dialer (bus_peer emit)
# answers a real call-scheduler's due call with a final no-answer carrying `agent`; the SMS that
# follows says {agent_name} as that agent. And LEAD_RETENTION_DAYS scrubs sms.db. (sms_followup.sh covers the rest with the real dialer.)
. "$(dirname "$0")/calls_lib.sh"
start_sandbox SANDBOX_SMS_DELIVER_MS=100
export EXOTEL_CALL_DELAY_MS=100 EXOTEL_MAX_RETRIES=1
: >"$T/outcomes"
start dialer "$BUILD/bus_peer" emit --name dialer --db "$T/dialer.db" --pub "$BUS_DIALER_PUB" \
    --replay "$BUS_DIALER_REPLAY" --lines "$T/outcomes"
start svc "$LEADBUS" --target=ingest,call-scheduler
wait_for 15 "ingest and call-scheduler" curl -fsS "$SVC_URL/healthz"
PS=$(free_port)
start_sms() {
    start sms env PORT=$PS DATA_DIR="$T/sms" SMS_ON=no-answer SMS_TEMPLATE='Hi {first_name}, {agent_name} tried to call you.' \
        EXOTEL_SMS_SENDER=LBUSIN EXOTEL_DLT_ENTITY_ID=1101234567890123456 \
        EXOTEL_DLT_TEMPLATE_ID=1107161234567890123 "$LEADBUS" --target=sms
    SMS=$LAST_PID
    wait_for 15 "the sms process" curl -fsS "http://127.0.0.1:$PS/healthz"
}
start_sms
lead=$(post_lead "Asha Rao" 9800000412)
dispatched() { [ "$(sqlite3 "$T/svc/call-scheduler.db" "SELECT state FROM calls WHERE call_id = 'call_$lead'" 2>/dev/null)" = dispatched ]; }
wait_for 15 "the call to be due" dispatched
echo "$lead call_$lead 1 no-answer 0 Ravi" >>"$T/outcomes"
body() { curl -s "$SBURL/sandbox/exotel/sms" | grep -o "{[^{}]*\"customField\":\"$lead\"[^{}]*}" | grep -o '"body":"[^"]*"' || true; }
has_body() { [ -n "$(body)" ]; }
wait_for 20 "the SMS after the agent's missed call" has_body
[ "$(body)" = '"body":"Hi Asha, Ravi tried to call you."' ] || fail "SMS text: $(body)"
echo "the SMS names the agent: $(body)"

# --- LEAD_RETENTION_DAYS: the lead's name and number leave sms.db (the row, its state, stay)
kill -TERM "$SMS"; wait_pid 15 "$SMS"
sqlite3 "$T/sms/sms.db" "UPDATE sms_leads SET received_ms = 1 WHERE lead_id = '$lead'"
start_sms
scrubbed() { [ "$(sqlite3 "$T/sms/sms.db" "SELECT first_name || phone_e164 FROM sms_leads WHERE lead_id = '$lead'")" = "" ]; }
wait_for 15 "the retention to scrub the lead" scrubbed
[ -n "$(sqlite3 "$T/sms/sms.db" "SELECT state FROM sms WHERE lead_id = '$lead'")" ] || fail "the SMS row went too"
curl -s "http://127.0.0.1:$PS/metrics" | grep -qF 'leadbus_retention_rows_total{store="sms",rule="sms_leads"} 1' ||
    fail "no retention count"
echo "retention: the lead's name and number scrubbed from sms.db"
echo "PASS"
