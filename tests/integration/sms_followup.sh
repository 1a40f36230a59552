#!/usr/bin/env bash
# The SMS follow-up (issue 20) against the sandbox: a lead whose last attempt is no-answer gets
# exactly one SMS with the DLT fields, its delivery callback is recorded; a completed call and a
# DND number get none; none goes outside the calling hours (it waits for the opening); and a
# SIGKILL of the SMS process right after a send never sends it twice. The SMS module runs in its
# own process (split mode), so its calling hours and its crashes are its own.
. "$(dirname "$0")/calls_lib.sh"
start_sandbox SANDBOX_DND_NUMBERS=9800000262 SANDBOX_SMS_DELIVER_MS=200
export EXOTEL_CALL_DELAY_MS=300 EXOTEL_RETRY_DELAYS_MS=300 EXOTEL_MAX_RETRIES=2
start_svc
PS=$(free_port)
SMS_URL="http://127.0.0.1:$PS"
SMS_ENV=(PORT=$PS DATA_DIR="$T/sms" SMS_ON=no-answer,busy
    SMS_TEMPLATE='Hi {first_name}, {agent_name} tried to call you about your enquiry. Call us back on 08047000000.'
    EXOTEL_SMS_SENDER=LBUSIN EXOTEL_DLT_ENTITY_ID=1101234567890123456
    EXOTEL_DLT_TEMPLATE_ID=1107161234567890123)
start_sms() {
    start sms env "${SMS_ENV[@]}" "$@" "$LEADBUS" --target=sms
    SMS=$LAST_PID
    wait_for 15 "the sms process" curl -fsS "$SMS_URL/readyz"
}
sms_list() { curl -s "$SBURL/sandbox/exotel/sms"; }
sms_count() { sms_list | grep -o "\"customField\":\"$1\"" | wc -l; }
sms_sent() { [ "$(sms_count "$1")" -ge 1 ]; }
sms_state() { sqlite3 "$T/sms/sms.db" "SELECT state FROM sms WHERE lead_id = '$1'" 2>/dev/null; }
sms_state_is() { [ "$(sms_state "$1")" = "$2" ]; }
closed() { call_is "call_$1" '"state":"done"'; }

# --- outside the calling hours: the SMS waits (IST window starting in two hours)
h=$(TZ=Asia/Kolkata date +%-H)
start_sms CALL_HOURS=$(printf '%02d:00-%02d:00' $(((h + 2) % 24)) $(((h + 3) % 24)))
late=$(post_lead "Meera Late" 9800000212)
wait_for 20 "the no-answer call to close" closed "$late"
waits() { [ "$(sqlite3 "$T/sms/sms.db" "SELECT state || ' ' || detail FROM sms WHERE lead_id = '$late'")" = "pending waits for the calling hours" ]; }
wait_for 10 "the SMS to wait for the opening" waits
[ "$(sms_count "$late")" -eq 0 ] || fail "an SMS went outside the calling hours"
grep -q "SMS waits for the calling hours { leadId: '$late'" "$T/sms.log" || fail "no waiting line"
echo "outside hours: the SMS waits ($(grep -o "inMs: [0-9]*" "$T/sms.log" | head -1))"
kill -TERM "$SMS"; wait_pid 15 "$SMS"

# --- inside the hours: the waiting SMS goes, a no-answer lead gets one, the others none
start_sms CALL_HOURS=always
wait_for 15 "the waiting SMS to go once the hours allow" sms_sent "$late"
noans=$(post_lead "Asha Rao" 9800000222)
done_ok=$(post_lead "Ravi Kumar" 9800000230)
dnd=$(post_lead "Dnd Lead" 9800000262)
busy=$(post_lead "Busy Bee" 9800000241)
wait_for 20 "the no-answer lead's SMS" sms_sent "$noans"
wait_for 20 "the busy lead's SMS" sms_sent "$busy"
wait_for 20 "the completed call to close" closed "$done_ok"
wait_for 20 "the DND call to close" closed "$dnd"
wait_for 10 "the delivery callback to be recorded" sms_state_is "$noans" delivered
rec=$(sms_list | grep -o "{[^{}]*\"customField\":\"$noans\"[^{}]*}")
for want in '"from":"LBUSIN"' '"to":"+919800000222"' '"dltEntityId":"1101234567890123456"' \
    '"dltTemplateId":"1107161234567890123"' '"smsType":"transactional"' \
    '"body":"Hi Asha, our team tried to call you about your enquiry. Call us back on 08047000000."'; do
    grep -qF "$want" <<<"$rec" || fail "SMS record lacks $want: $rec"
done
[ "$(sms_count "$noans")" -eq 1 ] || fail "no-answer lead got $(sms_count "$noans") SMS"
[ "$(sms_count "$done_ok")" -eq 0 ] || fail "a completed call got an SMS"
[ "$(sms_count "$dnd")" -eq 0 ] || fail "a DND number got an SMS"
[ -z "$(sms_state "$done_ok")$(sms_state "$dnd")" ] || fail "rows for leads that get no SMS"
grep -q "SMS follow-up.*$noans.*\*\*\*" "$T/sms.log" || fail "no masked SMS log line"
! grep -q "9800000222" "$T/sms.log" || fail "an unmasked number in the log"
echo "no-answer: one SMS with DLT fields, delivered; completed and DND: none"

# --- the sandbox refuses a send without the DLT fields (as Exotel does for Indian numbers)
code=$(curl -s -o "$T/refused" -w '%{http_code}' -u "sandbox-key:sandbox-token" \
    "$SBURL/sandbox/exotel/v1/Accounts/sandbox/Sms/send.json" \
    --data-urlencode From=LBUSIN --data-urlencode To=+919800000999 --data-urlencode Body=hi)
[ "$code" = 400 ] && grep -q DltEntityId "$T/refused" || fail "send without DLT: $code $(cat "$T/refused")"
# ... and the rest of row S1's refusals, one request each; a non-Indian number needs no DLT ids
sms_send() { # sms_send USER:PASS FIELD=VALUE...: the HTTP status
    local auth=$1; shift
    local args=()
    for f in "$@"; do args+=(--data-urlencode "$f"); done
    curl -s -o "$T/answer" -w '%{http_code}' -u "$auth" "$SBURL/sandbox/exotel/v1/Accounts/sandbox/Sms/send.json" "${args[@]}"
}
DLT=(DltEntityId=1101234567890123456 DltTemplateId=1107161234567890123)
long=$(head -c 2001 /dev/zero | tr '\0' x)
[ "$(sms_send sandbox-key:wrong From=LBUSIN To=+919800000999 Body=hi "${DLT[@]}")" = 401 ] || fail "S1: wrong auth"
[ "$(sms_send sandbox-key:sandbox-token From=LBUSIN To=+919800000999 "${DLT[@]}")" = 400 ] || fail "S1: no Body"
[ "$(sms_send sandbox-key:sandbox-token From=LBUSIN To=+919800000999 "Body=$long" "${DLT[@]}")" = 400 ] || fail "S1: Body over 2000"
[ "$(sms_send sandbox-key:sandbox-token From=lb-bus To=+919800000999 Body=hi "${DLT[@]}")" = 400 ] || fail "S1: not a sender id"
[ "$(sms_send sandbox-key:sandbox-token From=LBUSIN To=+14155550100 Body=hi)" = 200 ] &&
    grep -q '"SMSMessage":{"Sid":"sms' "$T/answer" || fail "S1: a non-Indian number without DLT ids: $(cat "$T/answer")"

# --- a forged delivery callback is refused
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$SMS_URL/exotel/sms/callback?lead=$noans&token=bad" \
    -d "SmsSid=x&Status=failed")
[ "$code" = 401 ] || fail "forged callback answered $code"

# --- SIGKILL right after a send: never sent twice
k=$(post_lead "Kill Nine" 9800000252)
wait_for 20 "the SMS to reach the sandbox" sms_sent "$k"
kill -9 "$SMS"; wait_pid 5 "$SMS" || true
start_sms CALL_HOURS=always
wait_for 10 "the SMS row to settle" bash -c "[ \"\$(sqlite3 '$T/sms/sms.db' \"SELECT state FROM sms WHERE lead_id = '$k'\")\" != sending ]"
# a second lead through the restarted process proves it works and has applied what it had
k2=$(post_lead "After Kill" 9800000272)
wait_for 20 "an SMS after the restart" sms_sent "$k2"
[ "$(sms_count "$k")" -eq 1 ] || fail "the SMS was sent $(sms_count "$k") times across the SIGKILL"
[ "$(sms_count "$noans")" -eq 1 ] && [ "$(sms_count "$late")" -eq 1 ] || fail "a replay sent again"
echo "SIGKILL after a send: one SMS (state $(sms_state "$k"))"
echo "PASS"
