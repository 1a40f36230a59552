#!/usr/bin/env bash
# zoho-sync against the sandbox in another process: leads land with the right
# fields; call outcomes (from a stand-in dialer) become notes and call records,
# once each, waiting for their lead and surviving a 500 after Zoho wrote;
# 429/500/timeouts and a SIGKILL mid-backlog of 1,000 leads leave exactly
# 1,000 Zoho records; short-lived tokens are refreshed; a data error lands in
# the dead-letter list and its retry works once the data is fixed.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
PA=$(free_port); PB=$(free_port)
start sandbox env PORT=$PA HTTP_BIND=127.0.0.1 DATA_DIR="$T/sb" API_KEYS=$KEY SANDBOX_ZOHO_TOKEN_TTL_S=4 SANDBOX_ZOHO_MINT_LIMIT=200 \
    SANDBOX_ZOHO_REQUIRED_FIELDS=Company SANDBOX_ZOHO_CUSTOM_FIELDS=Last_Call_Status \
    SANDBOX_HANG_MS=1500 "$LEADBUS" --target=sandbox
wait_for 10 sandbox curl -fsS "http://127.0.0.1:$PA/healthz"
ZO="http://127.0.0.1:$PA/sandbox/zoho"
export PORT=$PB HTTP_BIND=127.0.0.1 DATA_DIR="$T/svc" API_KEYS=$KEY ZOHO_ACCOUNTS_URL=$ZO ZOHO_API_DOMAIN=$ZO \
    ZOHO_TIMEOUT_MS=1000 ZOHO_BACKOFF_MAX_MS=2000 ZOHO_CALL_STATUS_FIELD=Last_Call_Status BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" \
    BUS_ZOHO_SYNC_PUB="ipc://$T/z.ipc" BUS_ZOHO_SYNC_REPLAY="ipc://$T/zr.ipc" \
    BUS_DIALER_PUB="ipc://$T/d.ipc" BUS_DIALER_REPLAY="ipc://$T/dr.ipc"
touch "$T/outcomes"
start dialer "$BUILD/bus_peer" emit --name dialer --db "$T/dialer.db" --pub "$BUS_DIALER_PUB" \
    --replay "$BUS_DIALER_REPLAY" --lines "$T/outcomes"
start_svc() {
    start svc "$LEADBUS" --target=ingest,zoho-sync
    SVC=$LAST_PID
    wait_for 10 "ingest and zoho-sync" curl -fsS "http://127.0.0.1:$PB/readyz"
}
leads_in_zoho() { curl -s "$ZO/records?module=Leads" | grep -o '"Leadbus_Id":"ld_[0-9a-f]*"' | sort -u | wc -l; }
records_in_zoho() { curl -s "$ZO/records?module=Leads" | grep -o '"Leadbus_Id"' | wc -l; }
at_least() { [ "$("$1")" -ge "$2" ]; }
start_svc

# --- one lead, every mapped field
out=$(curl -s -X POST "http://127.0.0.1:$PB/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
    -d '{"name":"Asha Rao","phone":"9876543210","email":"Asha@Example.com","source":"Website","company":"Rao & Co","city":"Pune","notes":"call after 5"}')
first=$(grep -o 'ld_[0-9a-f]*' <<<"$out") || fail "post: $out"
wait_for 20 "the first lead in Zoho" at_least leads_in_zoho 1
rec=$(curl -s "$ZO/records?module=Leads")
for f in '"First_Name":"Asha"' '"Last_Name":"Rao"' '"Email":"asha@example.com"' '"Phone":"+919876543210"' \
         '"Lead_Source":"Website"' '"Company":"Rao & Co"' '"City":"Pune"' '"Description":"call after 5"' \
         "\"Leadbus_Id\":\"$first\""; do
    grep -qF "$f" <<<"$rec" || fail "Zoho record lacks $f: $rec"
done

# --- call outcomes: a note per attempt, a call record per connected call
notes_with() { curl -s "$ZO/records?module=Notes" | grep -o -- "$1" | wc -l; }
calls_with() { curl -s "$ZO/records?module=Calls" | grep -o -- "$1" | wc -l; }
has_notes() { [ "$(notes_with "$1")" -ge "$2" ]; }
echo "$first c1 1 busy 0" >>"$T/outcomes"
echo "$first c1 2 completed 73" >>"$T/outcomes"
wait_for 30 "two notes on the first lead" has_notes "leadbus call c1 attempt" 2
notes=$(curl -s "$ZO/records?module=Notes")
grep -q 'Auto-call attempt 1/3: busy' <<<"$notes" || fail "busy note: $notes"
grep -q 'Auto-call attempt 2/3: completed.*Duration: 73 s.*Recording: http://sandbox.invalid/' <<<"$notes" || fail "completed note: $notes"
calls=$(curl -s "$ZO/records?module=Calls")
[ "$(calls_with 'leadbus call c1 attempt')" -eq 1 ] || fail "one call record expected (the connected one): $calls"
grep -q '"Call_Duration":"01:13"' <<<"$calls" && grep -q '"Call_Type":"Outbound"' <<<"$calls" || fail "call record: $calls"
# the same outcome again (a redelivered event) writes nothing
echo "$first c1 2 completed 73" >>"$T/outcomes"
# Zoho keeps the writes but answers 500: the retry must find them, not write twice
curl -fsS -X POST "http://127.0.0.1:$PA/sandbox/faults" -d "zoho.500_after_write=100" >/dev/null
echo "$first c1 3 completed 30" >>"$T/outcomes"
wait_for 30 "the third attempt's note" has_notes "leadbus call c1 attempt 3" 1
has_call3() { [ "$(calls_with 'leadbus call c1 attempt 3')" -ge 1 ]; }
wait_for 30 "the third attempt's call record" has_call3
# (the lead's status field is a PUT, which a 500 after write would fail forever: lift the fault)
curl -fsS -X POST "http://127.0.0.1:$PA/sandbox/faults" -d reset >/dev/null
outcome_done() { grep -q "Call outcome written to Zoho.*callId: 'c1', attempt: 3" "$T/svc.log"; }
wait_for 30 "the third outcome to be recorded as written" outcome_done
# an outcome for a lead Zoho does not have yet waits for it
curl -fsS -X POST "http://127.0.0.1:$PA/sandbox/faults" -d "zoho.down_ms=3000" >/dev/null
out=$(curl -s -X POST "http://127.0.0.1:$PB/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
    -d '{"name":"Later Lead","phone":"9811111111","company":"Acme"}')
later=$(grep -o 'ld_[0-9a-f]*' <<<"$out")
echo "$later c2 1 no-answer 0" >>"$T/outcomes"
wait_for 30 "the waiting outcome's note" has_notes "leadbus call c2 attempt 1" 1
[ "$(notes_with 'leadbus call c1 attempt')" -eq 3 ] && [ "$(calls_with 'leadbus call c1 attempt')" -eq 2 ] \
    || fail "outcomes written more than once: $(notes_with 'leadbus call c1 attempt') notes, $(calls_with 'leadbus call c1 attempt') calls"
asha=$(curl -s "$ZO/records?module=Leads" | grep -o "{[^{}]*\"Leadbus_Id\":\"$first\"[^{}]*}")
grep -q '"Last_Call_Status":"completed"' <<<"$asha" || fail "ZOHO_CALL_STATUS_FIELD not set on the lead: $asha"
echo "call outcomes: 4 notes, 2 call records, none twice (incl. a redelivery and a 500 after write)"

# --- 1,000 leads through faults, with a SIGKILL in the middle of the backlog
curl -fsS -X POST "http://127.0.0.1:$PA/sandbox/faults" -d "zoho.429=15,zoho.500=15,zoho.timeout=5" >/dev/null
N=1000
awk -v n=$N -v url="http://127.0.0.1:$PB/leads" -v key=$KEY 'BEGIN {
    for (i = 1; i <= n; i++) {
        printf "url = \"%s\"\nheader = \"Content-Type: application/json\"\nheader = \"X-API-Key: %s\"\n", url, key
        printf "data = \"{\\\"name\\\":\\\"Bulk %d\\\",\\\"phone\\\":\\\"97%08d\\\",\\\"company\\\":\\\"Acme\\\"}\"\n", i, i
        printf "output = \"/dev/null\"\nwrite-out = \"%%{http_code}\\\\n\"\n"
        if (i < n) print "next"
    }}' >"$T/bulk.cfg"
curl -s --no-progress-meter --parallel --parallel-max 32 -K "$T/bulk.cfg" >"$T/codes" 2>"$T/curl.err"
[ "$(grep -c '^202$' "$T/codes")" -eq $N ] || fail "not every bulk lead was accepted: $(sort "$T/codes" | uniq -c)"
wait_for 120 "part of the backlog in Zoho" at_least leads_in_zoho 150
kill -9 "$SVC"; wait "$SVC" 2>/dev/null || true
echo "SIGKILLed zoho-sync with $(leads_in_zoho) of $((N + 2)) leads in Zoho"
start_svc
wait_for 180 "all $((N + 2)) leads in Zoho" at_least leads_in_zoho $((N + 2))
curl -fsS -X POST "http://127.0.0.1:$PA/sandbox/faults" -d reset >/dev/null
distinct=$(leads_in_zoho); records=$(records_in_zoho)
echo "Zoho holds $records lead records for $distinct distinct leadbus leads ($((N + 2)) posted)"
[ "$records" -eq $((N + 2)) ] && [ "$distinct" -eq $((N + 2)) ] || fail "leads lost or duplicated"
tokens=$(curl -s "http://127.0.0.1:$PA/sandbox/requests?api=zoho" | grep -o 'oauth/v2/token' | wc -l)
echo "token requests: $tokens (4 s tokens)"
[ "$tokens" -ge 2 ] || fail "the short-lived token was never refreshed"

# --- a data error: Company is mandatory in this org and the lead has none
out=$(curl -s -X POST "http://127.0.0.1:$PB/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
    -d '{"name":"No Company","email":"nc@example.com"}')
dead=$(grep -o 'ld_[0-9a-f]*' <<<"$out")
failed() { curl -s -H "X-API-Key: $KEY" "http://127.0.0.1:$PB/zoho/failed"; }
has_dead() { failed | grep -c "\"leadId\":\"$dead\",\"code\":\"MANDATORY_NOT_FOUND\"" >/dev/null; }
wait_for 30 "the lead in the dead-letter list" has_dead
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PB/zoho/failed")
[ "$code" = 401 ] || fail "dead-letter list without a key: $code"
# the operator fixes the data (a default company) and retries
kill -TERM "$SVC"; wait_pid 10 "$SVC"
ZOHO_DEFAULT_COMPANY="Walk-in" start_svc
code=$(curl -s -o "$T/retry" -w '%{http_code}' -X POST -H "X-API-Key: $KEY" "http://127.0.0.1:$PB/zoho/failed/$dead/retry")
[ "$code" = 202 ] || fail "retry: $code $(cat "$T/retry")"
in_zoho() { curl -s "$ZO/records?module=Leads" | grep -c "\"Company\":\"Walk-in\",\"Leadbus_Id\":\"$dead\"" >/dev/null; }
wait_for 30 "the retried lead in Zoho" in_zoho
failed | grep -c "$dead" >/dev/null && fail "retried lead still in the dead-letter list"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-API-Key: $KEY" "http://127.0.0.1:$PB/zoho/failed/$dead/retry")
[ "$code" = 404 ] || fail "retrying a lead not in the list: $code"

# --- zoho-sync's stream: one lead.synced per lead, one lead.sync_failed
timeout 60 "$LEADBUS" tap --count=$((N + 4)) "$BUS_ZOHO_SYNC_PUB,$BUS_ZOHO_SYNC_REPLAY" >"$T/events"
synced=$(grep '"topic":"lead.synced"' "$T/events" | grep -o '"lead_id":"ld_[0-9a-f]*"' | sort -u | wc -l)
failed_ev=$(grep -c '"topic":"lead.sync_failed".*"code":"MANDATORY_NOT_FOUND"' "$T/events")
echo "zoho-sync published lead.synced for $synced leads, lead.sync_failed $failed_ev"
[ "$synced" -eq $((N + 3)) ] && [ "$failed_ev" -eq 1 ] || fail "events do not match"
grep -q "sandbox-secret\|sandbox-refresh\|1000\.[0-9a-f]\{32\}" "$T/svc.log" && fail "a secret reached the log"
kill -TERM "$SVC"; wait_pid 10 "$SVC"

# --- an outcome Zoho refuses for good (a status field this org does not have): written once as a
# note, then dead after ZOHO_OUTCOME_MAX_TRIES, loudly: ERROR line, /zoho/failed, /metrics,
# call.sync_failed, and /readyz once every write is refused; a retry after the fix completes it
ZOHO_CALL_STATUS_FIELD=No_Such_Field ZOHO_OUTCOME_MAX_TRIES=2 start_svc
for a in 1 2 3; do echo "$first c9 $a busy 0" >>"$T/outcomes"; done
dead_outcomes() { failed | grep -o '"callId":"c9","attempt":[0-9],"status":"busy","code":"INVALID_DATA"' | wc -l; }
three_dead() { [ "$(dead_outcomes)" -eq 3 ]; }
wait_for 60 "three refused outcomes in the dead-letter list" three_dead
[ "$(grep -c 'A call outcome could not be written to Zoho.*callId: .c9.' "$T/svc.log")" -eq 3 ] \
    || fail "expected one ERROR line per dead outcome"
curl -s "http://127.0.0.1:$PB/metrics" | grep -c '^leadbus_zoho_outcomes{state="dead"} 3$'  >/dev/null\
    || fail "dead outcomes not in /metrics: $(curl -s "http://127.0.0.1:$PB/metrics" | grep zoho_outcome)"
refusing() { curl -s "http://127.0.0.1:$PB/readyz" | grep -c 'zoho-sync: Zoho refuses call outcomes' >/dev/null; }
wait_for 10 "/readyz to say Zoho refuses every outcome" refusing
timeout 30 "$LEADBUS" tap --topic=call.sync_failed --count=3 "$BUS_ZOHO_SYNC_PUB,$BUS_ZOHO_SYNC_REPLAY" >"$T/sf"
[ "$(grep -c '"lead_id":"'"$first"'","call_id":"c9".*"code":"INVALID_DATA".*"permanent":true' "$T/sf")" -eq 3 ] \
    || fail "call.sync_failed events: $(cat "$T/sf")"
[ "$(notes_with 'leadbus call c9 attempt')" -eq 3 ] || fail "the refused outcomes' notes: $(notes_with 'leadbus call c9 attempt')"
kill -TERM "$SVC"; wait_pid 10 "$SVC"
start_svc # the operator fixes ZOHO_CALL_STATUS_FIELD and retries the lead's outcomes
code=$(curl -s -o "$T/retry" -w '%{http_code}' -X POST -H "X-API-Key: $KEY" "http://127.0.0.1:$PB/zoho/failed/$first/retry")
[ "$code" = 202 ] && grep -q '"outcomes":3' "$T/retry" || fail "retry of dead outcomes: $code $(cat "$T/retry")"
none_dead() { [ "$(dead_outcomes)" -eq 0 ] && grep -q "Call outcome written to Zoho.*callId: 'c9', attempt: 3" "$T/svc.log"; }
wait_for 30 "the retried outcomes to be written" none_dead
curl -fsS "http://127.0.0.1:$PB/readyz" >/dev/null || fail "not ready after the outcomes were written"
[ "$(notes_with 'leadbus call c9 attempt')" -eq 3 ] || fail "a retried outcome wrote its note again"
echo "refused outcomes: 3 dead-lettered loudly, then written after the fix, 3 notes in all"
kill -TERM "$SVC"; wait_pid 10 "$SVC"

# --- rejected credentials stop syncing with one clear line and a /readyz failure, not a retry storm
rm -rf "$T/svc"
before=$(curl -s "http://127.0.0.1:$PA/sandbox/requests?api=zoho" | grep -o 'oauth/v2/token' | wc -l)
# All three (a partial set is refused at start); the sandbox does not know this client.
ZOHO_CLIENT_ID=YOUR_CLIENT_ID ZOHO_CLIENT_SECRET=YOUR_SECRET ZOHO_REFRESH_TOKEN=YOUR_TOKEN \
    start svc "$LEADBUS" --target=ingest,zoho-sync
SVC=$LAST_PID
wait_for 10 "ingest" curl -fsS "http://127.0.0.1:$PB/healthz"
curl -s -X POST "http://127.0.0.1:$PB/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
    -d '{"name":"Blocked","email":"b@example.com","company":"Acme"}' >/dev/null
not_ready() { curl -s "http://127.0.0.1:$PB/readyz" | grep -c '"failing":\["zoho-sync"\]' >/dev/null; }
wait_for 20 "/readyz to report zoho-sync" not_ready
after=$(curl -s "http://127.0.0.1:$PA/sandbox/requests?api=zoho" | grep -o 'oauth/v2/token' | wc -l)
[ $((after - before)) -eq 1 ] || fail "rejected credentials were tried $((after - before)) times"
[ "$(grep -c 'Zoho rejected the OAuth credentials' "$T/svc.log")" -eq 1 ] || fail "expected one clear error line"
grep -q "invalid_client" "$T/svc.log" || fail "the error line should name Zoho's error"
kill -TERM "$SVC"; wait_pid 10 "$SVC"
