#!/usr/bin/env bash
# Walks the Exotel rows of docs/api-conformance.md: for each row, requests the sandbox (or, for
# StatusCallback, the dialer) must refuse, in Exotel's error shape, and one it must accept.
# The accepted connect is exactly the form the dialer sends; the dialer's own requests are
# then checked end to end (its connect placed, its bulk lookups accepted).
. "$(dirname "$0")/calls_lib.sh"
CB_TOKEN=conformance-token-0123456
start_sandbox SANDBOX_DND_NUMBERS=9800003064
export EXOTEL_CALL_DELAY_MS=0 EXOTEL_CALLBACK_TOKEN=$CB_TOKEN EXOTEL_CALLBACK_GRACE_MS=60000
start_svc
EX="$SBURL/sandbox/exotel/v1/Accounts/sandbox"
AUTH=(-u sandbox-key:sandbox-token)
ROWS=0 CHECKS=0

# expect CODE PATTERN CURL-ARGS...: the answer has status CODE and a body matching PATTERN
expect() {
    local code=$1 pat=$2; shift 2
    local got
    got=$(curl -s -o "$T/body" -w '%{http_code}' "$@")
    [ "$got" = "$code" ] && grep -q -- "$pat" "$T/body" ||
        fail "expected $code /$pat/, got $got $(head -c 300 "$T/body") for: $*"
    CHECKS=$((CHECKS + 1))
}
row() { ROWS=$((ROWS + 1)); echo "row $ROWS: $*"; }
rest() { echo "{\"RestException\":{\"Status\":$1,\"Message\":\"$2"; } # Exotel's JSON error shape

# The connect form exactly as exotel_connect_form writes it (agent first, then the lead).
BASE=(-d From=08047000001 --data-urlencode To=+919800003010 -d CallerId=08047000000
    --data-urlencode "StatusCallback=http://127.0.0.1:9/exotel/callback?call=c&attempt=1&token=t")
FORM=("${BASE[@]}" -d CallType=trans -d TimeOut=45 -d TimeLimit=600
    --data-urlencode 'StatusCallbackEvents[0]=terminal' --data-urlencode StatusCallbackContentType=application/json
    -d CustomField=call_x:1)

row "POST Calls/connect.json, agent form (From, To, CallerId)"
expect 401 "$(rest 401 Authentication)" -u sandbox-key:wrong -X POST "$EX/Calls/connect.json" "${FORM[@]}"
expect 400 "$(rest 400 'Missing parameter: To or Url')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=08047000001 -d CallerId=08047000000
expect 400 "$(rest 400 'Missing parameter: CallerId')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=08047000001 -d To=09800003010
expect 400 "$(rest 400 'Content-Type')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -H 'Content-Type: application/json' \
    -d '{"From":"08047000001","To":"09800003010","CallerId":"08047000000"}'
expect 400 "$(rest 400 'CallType')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" "${BASE[@]}" -d CallType=promo
expect 400 "$(rest 400 'TimeLimit is 1 to 14400')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" "${BASE[@]}" -d TimeOut=90
expect 400 "$(rest 400 'StatusCallbackEvents')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" "${BASE[@]}" \
    --data-urlencode 'StatusCallbackEvents[0]=ringing'
expect 400 "$(rest 400 'StatusCallbackContentType')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" \
    -d From=08047000001 -d To=09800003010 -d CallerId=08047000000 -d StatusCallbackContentType=text/xml
expect 400 "$(rest 400 'CustomField')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" "${BASE[@]}" -d "CustomField=$(printf 'x%.0s' $(seq 1 129))"
expect 403 "$(rest 403 'Call to \[098\*\*\*64\] cannot be made because of TRAI NDNC')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" \
    -d From=08047000001 -d To=09800003064 -d CallerId=08047000000
expect 200 '^{"Call":{"Sid":"[0-9a-f]\{32\}".*"Status":"in-progress"' "${AUTH[@]}" -X POST "$EX/Calls/connect.json" "${FORM[@]}"
AGENT_SID=$(grep -o '"Sid":"[0-9a-f]*"' "$T/body" | cut -d'"' -f4)
# multipart/form-data, as Exotel's own Java sample sends it
expect 200 '^{"Call":{"Sid":"[0-9a-f]\{32\}"' "${AUTH[@]}" -X POST "$EX/Calls/connect.json" \
    -F From=08047000001 -F To=09800003010 -F CallerId=08047000000 -F CallType=trans

row "POST Calls/connect.json, flow form (From, CallerId, Url)"
expect 400 "$(rest 400 'Url: expected')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=09800003010 -d CallerId=08047000000 -d Url=start_voice/42
expect 400 "$(rest 400 'Missing parameter: From')" "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d CallerId=08047000000 \
    --data-urlencode Url=http://my.exotel.com/sandbox/exoml/start_voice/42
expect 200 '^{"Call":{"Sid":"[0-9a-f]\{32\}"' "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=09800003010 -d CallerId=08047000000 \
    --data-urlencode Url=http://my.exotel.com/sandbox/exoml/start_voice/42 -d CallType=trans

row "POST Calls/connect (no .json): XML answers"
expect 401 '<TwilioResponse>.*' -u sandbox-key:wrong -X POST "$EX/Calls/connect" "${FORM[@]}"
grep -q '<RestException>' "$T/body" || fail "XML error without RestException"
expect 200 '<TwilioResponse>' "${AUTH[@]}" -X POST "$EX/Calls/connect" "${FORM[@]}"
grep -q '<Sid>[0-9a-f]\{32\}</Sid>' "$T/body" || fail "XML call without Sid"

row "GET Calls/{Sid}.json (single call details)"
expect 401 "$(rest 401 Authentication)" -u sandbox-key:wrong "$EX/Calls/$AGENT_SID.json"
expect 404 "$(rest 404 'Not Found')" "${AUTH[@]}" "$EX/Calls/ffffffffffffffffffffffffffffffff.json"
expect 400 "$(rest 400 'RecordingUrlValidity')" "${AUTH[@]}" "$EX/Calls/$AGENT_SID.json?details=true&RecordingUrlValidity=61"
expect 200 "^{\"Call\":{\"Sid\":\"$AGENT_SID\"" "${AUTH[@]}" "$EX/Calls/$AGENT_SID.json?details=true"

row "GET Calls.json?To=&DateCreated=&PageSize=&SortBy=&After= (bulk call details, paged)"
finished() { curl -s "${AUTH[@]}" -G "$EX/Calls.json" --data-urlencode To=09800003010 | grep -c '"Total":[3-9]' >/dev/null; }
wait_for 15 "the conformance calls to end" finished
today=$(TZ=Asia/Kolkata date +%Y-%m-%d)
BULK=(-G "$EX/Calls.json" --data-urlencode "To=09800003010,+919800003010"
    --data-urlencode "DateCreated=gte:$today 00:00:00;lte:$today 23:59:59" --data-urlencode SortBy=DateCreated:asc)
expect 401 "$(rest 401 Authentication)" -u sandbox-key:wrong "${BULK[@]}"
expect 400 "$(rest 400 'PageSize must be a number from 1 to 100')" "${AUTH[@]}" "${BULK[@]}" -d PageSize=101
expect 400 "$(rest 400 'To and From take at most 5 numbers')" "${AUTH[@]}" -G "$EX/Calls.json" --data-urlencode "To=1111111111,2222222222,3333333333,4444444444,5555555555,6666666666"
expect 400 "$(rest 400 'DateCreated: the range can be at most 1 month')" "${AUTH[@]}" -G "$EX/Calls.json" --data-urlencode "DateCreated=gte:2026-01-01 00:00:00;lte:2026-03-01 00:00:00"
expect 400 "$(rest 400 'Invalid page cursor')" "${AUTH[@]}" "${BULK[@]}" -d After=not-a-cursor
expect 200 '"Metadata":{"Total":[3-9],"PageSize":100,.*"NextPageUri":null' "${AUTH[@]}" "${BULK[@]}" -d PageSize=100
expect 200 '"PageSize":1,.*"PrevPageUri":null,"NextPageUri":"/v1/Accounts/sandbox/Calls.json?[^"]*After=' "${AUTH[@]}" "${BULK[@]}" -d PageSize=1
sid1=$(grep -o '"Calls":\[{"Sid":"[0-9a-f]*"' "$T/body" | grep -o '[0-9a-f]\{32\}')
after=$(grep -o 'After=[0-9a-f]*' "$T/body" | cut -d= -f2)
expect 200 '"PrevPageUri":"/v1/Accounts/sandbox/Calls.json?[^"]*Before=' "${AUTH[@]}" "${BULK[@]}" -d PageSize=1 -d "After=$after"
sid2=$(grep -o '"Calls":\[{"Sid":"[0-9a-f]*"' "$T/body" | grep -o '[0-9a-f]\{32\}')
[ -n "$sid1" ] && [ -n "$sid2" ] && [ "$sid1" != "$sid2" ] || fail "page 2 repeats page 1 ($sid1, $sid2)"
[ "$sid1" = "$AGENT_SID" ] || fail "oldest first: page 1 has $sid1, expected $AGENT_SID"

row "GET Numbers/{number}.json (number metadata, DND pre-check)"
expect 401 "$(rest 401 Authentication)" -u sandbox-key:wrong "$EX/Numbers/09800003064.json"
expect 400 "$(rest 400 'Invalid phone number')" "${AUTH[@]}" "$EX/Numbers/12ab.json"
expect 200 '^{"Numbers":{.*"DND":"Yes"' "${AUTH[@]}" "$EX/Numbers/09800003064.json"
expect 200 '^{"Numbers":{.*"DND":"No"' "${AUTH[@]}" "$EX/Numbers/%2B919800003010.json"

# The dialer's own requests: a lead's connect is accepted (placed), its callback lost, so the
# StatusCallback rows below can be sent to a live attempt.
curl -fsS -X POST "$SBURL/sandbox/faults" -d exotel.cb_drop=100 >/dev/null
lead=$(post_lead "Conformance" 9800003100)
call=call_$lead
initiated() { call_is "$call" '"state":"dispatched"' && grep -q "Call initiated successfully" "$T/svc.log"; }
wait_for 15 "the dialer's connect to be accepted" initiated
[ "$(connects_of "$call")" -eq 1 ] || fail "the dialer's connect: $(connects_of "$call") requests"
CB="$SVC_URL/exotel/callback?call=$call&attempt=1&token=$(cb_token "$call" 1)"
SID=$(attempt_sid "$call" 1)
[ -n "$SID" ] || fail "no Sid stored for the dialer's attempt"

row "StatusCallback, multipart/form-data (Exotel's default)"
expect 400 '"malformed_callback"' -X POST "$CB" -H 'Content-Type: multipart/form-data' -d 'CallSid=x&Status=completed'
expect 401 '"unauthorized"' -X POST "$SVC_URL/exotel/callback?call=$call&attempt=1&token=$CB_TOKEN" -F CallSid=x -F Status=completed
expect 200 '"success":true' -X POST "$CB" -F "CallSid=$SID" -F Status=completed \
    -F ConversationDuration=12 -F EventType=terminal -F "CustomField=$call:1"
row "StatusCallback, application/x-www-form-urlencoded (GUESS: accepted as well)"
expect 400 '"malformed_callback"' -X POST "$CB" -d 'Status=completed'
expect 200 '"duplicate":true' -X POST "$CB" -d "CallSid=$SID&Status=completed"
row "StatusCallback, application/json (StatusCallbackContentType=application/json)"
expect 400 '"malformed_callback"' -X POST "$CB" -H 'Content-Type: application/json' -d "{\"CallSid\":\"$SID\"}"
expect 400 '"malformed_callback"' -X POST "$CB" -H 'Content-Type: text/plain' -d 'CallSid=x&Status=completed'
expect 200 '"duplicate":true' -X POST "$CB" -H 'Content-Type: application/json' \
    -d "{\"CallSid\":\"$SID\",\"Status\":\"completed\",\"Legs\":[{\"OnCallDuration\":3}]}"
call_is "$call" '"status":"completed"' || fail "the callback did not finish the call: $(call_json "$call")"
curl -fsS -X POST "$SBURL/sandbox/faults" -d reset >/dev/null

echo "conformance_exotel: $ROWS rows, $CHECKS requests answered as documented"
stop_svc
