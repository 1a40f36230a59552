#!/usr/bin/env bash
# The SMS follow-up names the agent who called (issue 20): a stand-in dialer (bus_peer emit)
# answers a real call-scheduler's due call with a final no-answer carrying `agent`; the SMS that
# follows says {agent_name} as that agent. (sms_followup.sh covers the rest with the real dialer.)
. "$(dirname "$0")/calls_lib.sh"
start_sandbox SANDBOX_SMS_DELIVER_MS=100
export EXOTEL_CALL_DELAY_MS=100 EXOTEL_MAX_RETRIES=1
: >"$T/outcomes"
start dialer "$BUILD/bus_peer" emit --name dialer --db "$T/dialer.db" --pub "$BUS_DIALER_PUB" \
    --replay "$BUS_DIALER_REPLAY" --lines "$T/outcomes"
start svc "$LEADBUS" --target=ingest,call-scheduler
wait_for 15 "ingest and call-scheduler" curl -fsS "$SVC_URL/healthz"
PS=$(free_port)
start sms env PORT=$PS DATA_DIR="$T/sms" SMS_ON=no-answer SMS_TEMPLATE='Hi {first_name}, {agent_name} tried to call you.' \
    EXOTEL_SMS_SENDER=LBUSIN EXOTEL_DLT_ENTITY_ID=1101234567890123456 EXOTEL_DLT_TEMPLATE_ID=1107161234567890123 \
    "$LEADBUS" --target=sms
wait_for 15 "the sms process" curl -fsS "http://127.0.0.1:$PS/healthz"
lead=$(post_lead "Asha Rao" 9800000412)
dispatched() { [ "$(sqlite3 "$T/svc/call-scheduler.db" "SELECT state FROM calls WHERE call_id = 'call_$lead'" 2>/dev/null)" = dispatched ]; }
wait_for 15 "the call to be due" dispatched
echo "$lead call_$lead 1 no-answer 0 Ravi" >>"$T/outcomes"
body() { curl -s "$SBURL/sandbox/exotel/sms" | grep -o "{[^{}]*\"customField\":\"$lead\"[^{}]*}" | grep -o '"body":"[^"]*"' || true; }
has_body() { [ -n "$(body)" ]; }
wait_for 20 "the SMS after the agent's missed call" has_body
[ "$(body)" = '"body":"Hi Asha, Ravi tried to call you."' ] || fail "SMS text: $(body)"
echo "the SMS names the agent: $(body)"
echo "PASS"
