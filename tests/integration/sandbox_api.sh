#!/usr/bin/env bash
# sandbox: the simulated Exotel and Zoho APIs refuse what the real ones refuse
# (wrong auth, missing parameters, missing Last_Name, expired tokens), answer
# in their shapes, ring and call back (multipart or JSON, deterministic
# outcomes), rate-limit, inject faults, and log requests with secrets masked.
. "$(dirname "$0")/lib.sh"
cd "$T"
SINK_PORT=$(free_port)
start sink "$BUILD/http_sink" "$SINK_PORT" "$T/callbacks.jsonl"
CB="http://127.0.0.1:$SINK_PORT/exotel/callback?call=c1&token=t"

run_sandbox() { # name port [env...]
    local name=$1 port=$2; shift 2
    start "$name" env PORT="$port" HTTP_BIND=127.0.0.1 DATA_DIR="$T/$name" API_KEYS=test-key-0123456789abcdef \
        SANDBOX_RING_MS=200 SANDBOX_OUTCOME_MODE=last-digit SANDBOX_SEED=7 "$@" "$LEADBUS" --target=sandbox
    wait_for 10 "sandbox $name" curl -fsS "http://127.0.0.1:$port/healthz"
}
P=$(free_port)
run_sandbox sb "$P" SANDBOX_EXOTEL_RATE_LIMIT=25
EX="http://127.0.0.1:$P/sandbox/exotel/v1/Accounts/sandbox"
ZO="http://127.0.0.1:$P/sandbox/zoho"
AUTH=(-u sandbox-key:sandbox-token)

# call ARGS...: POST connect.json, prints "CODE BODY"
call() { curl -s -o "$T/r" -w '%{http_code}' "$@"; echo " $(cat "$T/r")"; }
count_ge() { # count_ge FILE PATTERN N: at least N lines of FILE match
    [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$3" ]
}
has() { # has PATTERN CURL-ARGS...: the answer matches (re-fetched on every try)
    local pat=$1; shift
    curl -s "$@" | grep -c -- "$pat" >/dev/null
}
must() { # must PATTERN TEXT
    grep -q -- "$1" <<<"$2" || fail "expected '$1' in: $2"
}

# --- Exotel: refusals in Exotel's shape
must '^401 {"RestException":{"Status":401' "$(call -u sandbox-key:nope -X POST "$EX/Calls/connect.json" -d From=09876543210)"
must '^401 ' "$(call "${AUTH[@]}" -X POST "http://127.0.0.1:$P/sandbox/exotel/v1/Accounts/other/Calls/connect.json" -d From=1)"
must '^400 .*Missing parameter: From' "$(call "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d To=09123456789)"
must '^400 .*Missing parameter: CallerId' "$(call "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=09876543210 -d To=09123456789)"
must '^400 .*Missing parameter: To or Url' "$(call "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=09876543210 -d CallerId=08047000000)"
must '^400 .*Invalid phone number' "$(call "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=12ab -d To=09123456789 -d CallerId=08047000000)"
must '<RestException>' "$(call -u sandbox-key:nope -X POST "$EX/Calls/connect" -d From=1)"

# --- Exotel: a call per outcome; the number's last digit picks it (0 completed, 1 busy, 2 no-answer, 3 failed)
declare -A SID
for d in 0 1 2 3; do
    out=$(call "${AUTH[@]}" -X POST "$EX/Calls/connect.json" --data-urlencode "From=+9198765432$d$d" \
        -d "To=0912345678$d" -d CallerId=08047000000 -d "CustomField=lead-$d" \
        --data-urlencode "StatusCallback=$CB" \
        $( [ $d = 0 ] && echo -d StatusCallbackContentType=application/json ))
    must '^200 {"Call":{"Sid":"[0-9a-f]\{32\}"' "$out"
    must '"Status":"in-progress"' "$out"
    SID[$d]=$(grep -o '"Sid":"[0-9a-f]*"' <<<"$out" | cut -d'"' -f4)
done
xml=$(call "${AUTH[@]}" -X POST "$EX/Calls/connect" -d From=09876543219 -d CallerId=08047000000 \
    -d Url=http://my.exotel.com/sandbox/exoml/start_voice/42)
must '^200 <?xml' "$xml"; must '<TwilioResponse>' "$xml"; must '<Sid>[0-9a-f]\{32\}</Sid>' "$xml"

wait_for 10 "four StatusCallbacks" count_ge "$T/callbacks.jsonl" CallSid 4
for d in 0 1 2 3; do grep -q "${SID[$d]}" "$T/callbacks.jsonl" || fail "no callback for outcome $d"; done
json_cb=$(grep "${SID[0]}" "$T/callbacks.jsonl")
must '"content_type":"application/json"' "$json_cb"
must '\\"Status\\":\\"completed\\"' "$json_cb"
must '\\"RecordingUrl\\":\\"http' "$json_cb"
must '\\"CustomField\\":\\"lead-0\\"' "$json_cb"
must '"query":"call=c1&token=t"' "$json_cb"
busy_cb=$(grep "${SID[1]}" "$T/callbacks.jsonl")
must '"content_type":"multipart/form-data' "$busy_cb"
must 'name=\\"Status\\"\\r\\n\\r\\nbusy' "$busy_cb"
grep "${SID[2]}" "$T/callbacks.jsonl" | grep -c 'no-answer' >/dev/null || fail "no-answer outcome"
grep "${SID[3]}" "$T/callbacks.jsonl" | grep -c 'failed' >/dev/null || fail "failed outcome"

# --- Exotel: call details, single and bulk (ongoing calls are left out of bulk)
must '"Status":"busy"' "$(call "${AUTH[@]}" "$EX/Calls/${SID[1]}.json")"
must '^404 ' "$(call "${AUTH[@]}" "$EX/Calls/ffffffffffffffffffffffffffffffff.json")"
today=$(TZ=Asia/Kolkata date +%Y-%m-%d)
bulk=$(call "${AUTH[@]}" -G "$EX/Calls.json" --data-urlencode "To=+919123456782" \
    --data-urlencode "DateCreated=gte:$today 00:00:00;lte:$today 23:59:59")
must '"Total":1' "$bulk"; must "${SID[2]}" "$bulk"

# --- Exotel: the nasty case: 504 after placing the call; it rings anyway
curl -fsS -X POST "http://127.0.0.1:$P/sandbox/faults" -d "exotel.504_after_place=100" >/dev/null
must '^504 ' "$(call "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=09876543210 -d To=09111111114 -d CallerId=08047000000)"
curl -fsS -X POST "http://127.0.0.1:$P/sandbox/faults" -d reset >/dev/null
wait_for 10 "the 504'd call to show in call details" \
    has '"Total":1' "${AUTH[@]}" -G "$EX/Calls.json" --data-urlencode "To=09111111114"

# --- Exotel: duplicated and lost callbacks
curl -fsS -X POST "http://127.0.0.1:$P/sandbox/faults" -d "exotel.cb_dup=100" >/dev/null
dup=$(call "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=09876543210 -d To=09111111115 -d CallerId=08047000000 --data-urlencode "StatusCallback=$CB")
dsid=$(grep -o '"Sid":"[0-9a-f]*"' <<<"$dup" | cut -d'"' -f4)
wait_for 10 "duplicated callback" count_ge "$T/callbacks.jsonl" "$dsid" 2
curl -fsS -X POST "http://127.0.0.1:$P/sandbox/faults" -d "exotel.cb_dup=0,exotel.cb_drop=100" >/dev/null
lost=$(call "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=09876543210 -d To=09111111116 -d CallerId=08047000000 --data-urlencode "StatusCallback=$CB")
lsid=$(grep -o '"Sid":"[0-9a-f]*"' <<<"$lost" | cut -d'"' -f4)
wait_for 10 "the call whose callback is lost to end" has '"Status":"completed"' "${AUTH[@]}" "$EX/Calls/$lsid.json"
grep -q "$lsid" "$T/callbacks.jsonl" && fail "a dropped callback was sent"
curl -fsS -X POST "http://127.0.0.1:$P/sandbox/faults" -d reset >/dev/null
must '^400 .*bad_faults' "$(call -X POST "http://127.0.0.1:$P/sandbox/faults" -d 'exotel.nonsense=5')"

# --- Exotel: 25 placements per window at most (this instance), then 429
codes=""
for i in $(seq 1 25); do
    codes+=$(curl -s -o /dev/null -w '%{http_code} ' "${AUTH[@]}" -X POST "$EX/Calls/connect.json" \
        -d From=09876543210 -d To=09111111110 -d CallerId=08047000000)
done
placed=$(grep -o 200 <<<"$codes" | wc -l); limited=$(grep -o 429 <<<"$codes" | wc -l)
curl -s -D - -o /dev/null "${AUTH[@]}" -X POST "$EX/Calls/connect.json" -d From=09876543210 \
    -d To=09111111110 -d CallerId=08047000000 | grep -ci '^Retry-After: 1' >/dev/null || fail "429 without Retry-After"
echo "rate limit: $placed placed, $limited refused with 429 (limit 25, 8 placed before)"
[ "$placed" -eq 17 ] && [ "$limited" -eq 8 ] || fail "rate limit: $codes"

# --- Zoho: tokens
tok() { curl -s -X POST "$ZO/oauth/v2/token" -d grant_type=refresh_token -d "client_id=$1" \
    -d client_secret=sandbox-secret -d "refresh_token=$2" -w ' %{http_code}'; }
must '"error":"invalid_client"} 200$' "$(tok wrong sandbox-refresh)"
must '"error":"invalid_code"} 200$' "$(tok sandbox-client revoked)"
good=$(tok sandbox-client sandbox-refresh)
must '"expires_in":3600' "$good"; must "\"api_domain\":\"http://127.0.0.1:$P/sandbox/zoho\"" "$good"
TOKEN=$(grep -o '"access_token":"[^"]*"' <<<"$good" | cut -d'"' -f4)
ZH=(-H "Authorization: Zoho-oauthtoken $TOKEN" -H "Content-Type: application/json")

# --- Zoho: auth on the CRM
must '^401 .*AUTHENTICATION_FAILURE' "$(call -X POST "$ZO/crm/v8/Leads" -d '{}')"
must '^401 .*"code":"INVALID_TOKEN"' "$(call -H "Authorization: Zoho-oauthtoken 1000.bad" -X POST "$ZO/crm/v8/Leads" -d '{}')"
must '^404 .*INVALID_URL_PATTERN' "$(call "${ZH[@]}" -X POST "$ZO/crm/v9/Leads" -d '{}')"

# --- Zoho: Leads
ins=$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads" -d '{"data":[{"Last_Name":"Lead","First_Name":"Test","Email":"t@example.com","Lead_Source":"Website"}]}')
must '^201 {"data":\[{"code":"SUCCESS","details":{.*"id":"[0-9]\{19\}"' "$ins"
LEAD=$(grep -o '"id":"[0-9]\{19\}"' <<<"$ins" | head -1 | cut -d'"' -f4)
must '^400 .*"code":"MANDATORY_NOT_FOUND".*"api_name":"Last_Name"' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads" -d '{"data":[{"First_Name":"No"}]}')"
must '^400 .*"code":"DUPLICATE_DATA".*"api_name":"Email"' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads" -d '{"data":[{"Last_Name":"Again","Email":"t@example.com"}]}')"
must '^400 .*"code":"INVALID_DATA".*"api_name":"Favourite_Colour".*seems to be invalid' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads" -d '{"data":[{"Last_Name":"X","Favourite_Colour":"red"}]}')"
must '^207 .*"SUCCESS".*"MANDATORY_NOT_FOUND"' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads" -d '{"data":[{"Last_Name":"Ok"},{"Company":"NoName"}]}')"
up1=$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads/upsert" -d '{"data":[{"Last_Name":"Ext","Leadbus_Id":"ld_1"}]}')
must '^200 .*"action":"insert"' "$up1"
up2=$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads/upsert" -d '{"data":[{"Last_Name":"Ext2","Leadbus_Id":"ld_1"}]}')
must '^200 .*"action":"update","duplicate_field":"Leadbus_Id"' "$up2"
[ "$(grep -o '"id":"[0-9]*"' <<<"$up1" | head -1)" = "$(grep -o '"id":"[0-9]*"' <<<"$up2" | head -1)" ] || fail "upsert made a second record"
must '^200 {"data":\[{.*"Last_Name":"Lead"' "$(call "${ZH[@]}" "$ZO/crm/v8/Leads/$LEAD")"
must '^204 $' "$(call "${ZH[@]}" "$ZO/crm/v8/Leads/1234567890123456789")"

# --- Zoho: notes and calls
must '^201 .*SUCCESS' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads/$LEAD/Notes" -d '{"data":[{"Note_Title":"Call","Note_Content":"completed, 73 s","Parent_Id":{"module":{"api_name":"Leads"},"id":"'$LEAD'"}}]}')"
must '^400 .*related id given seems to be invalid' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads/999/Notes" -d '{"data":[{"Note_Content":"x","Parent_Id":{"module":{"api_name":"Leads"},"id":"999"}}]}')"
CALLREC='"Subject":"Auto-call","Call_Type":"Outbound","Outbound_Call_Status":"Completed","Call_Start_Time":"2026-11-24T10:00:00+05:30","$se_module":"Leads","What_Id":{"id":"'$LEAD'"}'
must '^400 .*DEPENDENT_MISMATCH' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Calls" -d "{\"data\":[{$CALLREC,\"Call_Duration\":\"00:00\"}]}")"
must '^201 .*SUCCESS' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Calls" -d "{\"data\":[{$CALLREC,\"Call_Duration\":\"01:13\"}]}")"
recs=$(curl -s "$ZO/records")
[ "$(grep -o '"\$module":"Leads"' <<<"$recs" | wc -l)" -eq 3 ] || fail "expected 3 leads in the sandbox CRM: $recs"
grep -q '"\$module":"Notes"' <<<"$recs" && grep -q '"\$module":"Calls"' <<<"$recs" || fail "note/call not kept"

# --- Zoho: faults
curl -fsS -X POST "http://127.0.0.1:$P/sandbox/faults" -d "zoho.429=100" >/dev/null
must '^429 .*TOO_MANY_REQUESTS' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads" -d '{"data":[{"Last_Name":"L"}]}')"
curl -s -D - -o /dev/null "${ZH[@]}" -X POST "$ZO/crm/v8/Leads" -d '{}' | grep -ci '^Retry-After: 1' >/dev/null || fail "429 without Retry-After"
curl -fsS -X POST "http://127.0.0.1:$P/sandbox/faults" -d "zoho.429=0,zoho.down_ms=60000" >/dev/null
must '^503 ' "$(call "${ZH[@]}" -X POST "$ZO/crm/v8/Leads" -d '{"data":[{"Last_Name":"L"}]}')"
curl -fsS -X POST "http://127.0.0.1:$P/sandbox/faults" -d reset >/dev/null

# --- the request log, with secrets and numbers masked
log=$(curl -s "http://127.0.0.1:$P/sandbox/requests?api=exotel")
must '"api":"exotel"' "$log"; must 'From=+91\*\*\*00' "$log"
grep -q '"api":"zoho"' <<<"$log" && fail "api filter"
all=$(curl -s "http://127.0.0.1:$P/sandbox/requests")
for secret in sandbox-token sandbox-secret sandbox-refresh "$TOKEN" 9876543210 9123456789; do
    grep -q -- "$secret" <<<"$all" && fail "request log shows '$secret'"
done

# --- a second sandbox: short-lived tokens expire; the 11th mint in 10 minutes is refused
P2=$(free_port)
run_sandbox sb2 "$P2" SANDBOX_ZOHO_TOKEN_TTL_S=1
ZO="http://127.0.0.1:$P2/sandbox/zoho"
t=$(tok sandbox-client sandbox-refresh | grep -o '"access_token":"[^"]*"' | cut -d'"' -f4)
must '^201 ' "$(call -H "Authorization: Zoho-oauthtoken $t" -X POST "$ZO/crm/v8/Leads" -d '{"data":[{"Last_Name":"L"}]}')"
wait_for 5 "the token to expire" has INVALID_TOKEN -H "Authorization: Zoho-oauthtoken $t" "$ZO/crm/v8/Leads/1"
for i in $(seq 2 10); do must '"access_token"' "$(tok sandbox-client sandbox-refresh)"; done
must '"error":"Access Denied".*200$' "$(tok sandbox-client sandbox-refresh)"
# --- Exotel: a call ends on time, even while another call's StatusCallback receiver is slow
# (the ringer is one thread; a call's end must not wait for it: bulk call details would then
# leave a finished call out, and a reconciling client would conclude it was never placed)
EX2="http://127.0.0.1:$P2/sandbox/exotel/v1/Accounts/sandbox"
slow="http://127.0.0.1:$SINK_PORT/exotel/callback?call=slow&hold_ms=6000"
must '^200 ' "$(call "${AUTH[@]}" -X POST "$EX2/Calls/connect.json" -d From=09876543210 -d To=09111111117 \
    -d CallerId=08047000000 --data-urlencode "StatusCallback=$slow")"
wait_for 5 "the slow receiver to hold a callback" count_ge "$T/callbacks.jsonl" "call=slow" 1
held=$SECONDS
must '^200 ' "$(call "${AUTH[@]}" -X POST "$EX2/Calls/connect.json" -d From=09876543210 -d To=09111111118 -d CallerId=08047000000)"
wait_for 3 "the second call to end on time (bulk call details list it)" \
    has '"Total":1' "${AUTH[@]}" -G "$EX2/Calls.json" --data-urlencode "To=09111111118"
[ $((SECONDS - held)) -lt 6 ] || fail "the slow callback was answered before the check: nothing proven"
echo "sandbox: Exotel and Zoho checks passed"
