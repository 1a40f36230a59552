#!/usr/bin/env bash
# call-scheduler and dialer against the sandbox as Exotel: the original guide's
# flow (delay, log lines, callback, completed), retries with their delays and
# the attempt limit, no retry for invalid or DND numbers, a 5xx that placed
# nothing (reconciled, then retried), a 504 that did place the call
# (reconciled, never redialed), lost and duplicated callbacks, the callback
# endpoint's refusals, skips (no phone, invalid phone, duplicate, disabled),
# calling hours, cancel, and the DND pre-check.
. "$(dirname "$0")/calls_lib.sh"
CB_TOKEN=test-callback-token-0123
start_sandbox SANDBOX_DND_NUMBERS=9800000064,9800000124 SANDBOX_INVALID_NUMBERS=9800000055
export EXOTEL_CALL_DELAY_MS=1000 EXOTEL_RETRY_DELAYS_MS=400,800 EXOTEL_RECONCILE_DELAY_MS=300 \
    EXOTEL_RECONCILE_WINDOW_MS=2000 EXOTEL_CALLBACK_GRACE_MS=1500 EXOTEL_HTTP_TIMEOUT_MS=1000 \
    EXOTEL_CALLBACK_TOKEN=$CB_TOKEN
start_svc
faults() { curl -fsS -X POST "$SBURL/sandbox/faults" -d "$1" >/dev/null; }
done_with() { call_is "$1" "\"state\":\"done\".*\"status\":\"$2\""; }

# --- the original guide's flow: one lead, called after the delay, completed
t0=$(date +%s%3N)
lead=$(post_lead "Test Lead" 9800000010)
call=call_$lead
wait_for 15 "the guide's call to complete" done_with "$call" completed
[ "$(connects_of "$call")" -eq 1 ] || fail "expected one connect request, got $(connects_of "$call")"
at=$(connect_log | awk -v c="$call" '$2 == c {print $1}')
late=$((at - t0))
echo "guide flow: Exotel received the connect $late ms after the POST (delay 1000 ms)"
[ $late -ge 1000 ] && [ $late -lt 3000 ] || fail "connect $late ms after the post"
grep -q "Scheduling call { callId: '$call', phoneNumber: '098\*\*\*10', delayMs: [0-9]* }" "$T/svc.log" || fail "no Scheduling call line"
grep -q "Executing call { callId: '$call', attempt: 1, phoneNumber: '098\*\*\*10' }" "$T/svc.log" || fail "no Executing call line"
grep -q "Call initiated successfully { callSid: '[0-9a-z]*', status: 'in-progress' }" "$T/svc.log" || fail "no Call initiated line"
grep -q "📞 Exotel IVR calling is ENABLED" "$T/svc.log" && grep -q "   Call delay: 1000ms (1s)" "$T/svc.log" || fail "banner"

# --- retries: busy and no-answer retry with the configured delays up to 3 attempts; failed does not
busy=call_$(post_lead "Busy Lead" 9800000021)
noans=call_$(post_lead "No Answer" 9800000032)
failed=call_$(post_lead "Failed Lead" 9800000043)
wait_for 20 "busy to close after 3 attempts" done_with "$busy" busy
wait_for 20 "no-answer to close after 3 attempts" done_with "$noans" no-answer
wait_for 20 "failed to close" done_with "$failed" failed
for c in "$busy" "$noans"; do
    n=$(connects_of "$c"); [ "$n" -eq 3 ] || fail "$c: $n connects, expected 3"
    call_is "$c" '"attempt":3' || fail "$c: $(call_json "$c")"
    read -r t1 t2 t3 <<<"$(connect_log | awk -v c="$c" '$2 == c {printf "%s ", $1}')"
    # each retry is due the delay after the previous attempt's outcome (a 200 ms ring later)
    [ $((t2 - t1)) -ge 600 ] && [ $((t3 - t2)) -ge 1000 ] && [ $((t3 - t2)) -lt 3000 ] ||
        fail "$c: retry spacing $((t2 - t1)) ms, $((t3 - t2)) ms"
    echo "retries of $c: $((t2 - t1)) ms then $((t3 - t2)) ms apart (delays 400, 800 + 200 ms ring)"
done
[ "$(connects_of "$failed")" -eq 1 ] || fail "failed was retried"

# --- refused numbers never retry: invalid (400) and DND (403 NDNC)
inval=call_$(post_lead "Invalid" 9800000055)
dnd=call_$(post_lead "Dnd" 9800000064)
wait_for 15 "the invalid number to be rejected" done_with "$inval" rejected
wait_for 15 "the DND number to close as dnd" done_with "$dnd" dnd
[ "$(connects_of "$inval")" -eq 1 ] && [ "$(connects_of "$dnd")" -eq 1 ] || fail "a refused number was redialed"
call_is "$dnd" 'NDNC' || fail "dnd detail: $(call_json "$dnd")"

# --- a 500 that placed nothing: reconciled as not placed, then retried and completed
faults "exotel.500=100"
c5=call_$(post_lead "Five Hundred" 9800000070)
wait_for 15 "the connect that gets a 500" has_connects "$c5" 1
faults reset
wait_for 20 "the retried call to complete" done_with "$c5" completed
[ "$(connects_of "$c5")" -eq 2 ] && call_is "$c5" '"attempt":2' || fail "500: $(connects_of "$c5") connects, $(call_json "$c5")"
grep -q "Reconciled: Exotel never placed the call { callId: '$c5', attempt: 1, pages: 1 }" "$T/svc.log" || fail "no reconciliation line"

# --- a 504 after Exotel placed the call, and its callback lost: reconciliation adopts it, no redial
faults "exotel.504_after_place=100,exotel.cb_drop=100"
c504=call_$(post_lead "Gateway" 9800000080)
wait_for 15 "the 504 call to be reconciled" done_with "$c504" completed
faults reset  # only now: the sandbox drops a callback when the ring ends
call_is "$c504" "found by reconciliation" || fail "504: $(call_json "$c504")"
[ "$(connects_of "$c504")" -eq 1 ] || fail "the 504 call was redialed"

# --- a lost callback: the call is looked up after the grace time
faults "exotel.cb_drop=100"
lost=call_$(post_lead "Lost Callback" 9800000090)
wait_for 15 "the call with no callback to finish" done_with "$lost" completed
faults reset
call_is "$lost" "from call details" || fail "lost: $(call_json "$lost")"

# --- a duplicated callback changes nothing
faults "exotel.cb_dup=100"
dup=call_$(post_lead "Dup Callback" 9800000106)
dup_seen() { grep -q "Duplicate status callback ignored { callId: '$dup'" "$T/svc.log"; }
wait_for 15 "the duplicate callback" dup_seen
faults reset
[ "$(grep -c "Call status received { callId: '$dup'" "$T/svc.log")" -eq 1 ] || fail "duplicate callback applied twice"

# --- the callback endpoint refuses what is not Exotel's
cb() { curl -s -o /dev/null -w '%{http_code}' -X POST "$SVC_URL/exotel/callback?$1" "${@:2}"; }
tok=$(cb_token "$call" 1)
[ "$(cb "call=$call&attempt=1&token=wrong-token-0123456" -d 'CallSid=x&Status=completed')" = 401 ] || fail "wrong token"
[ "$(cb "call=$call&attempt=1" -d 'CallSid=x&Status=completed')" = 401 ] || fail "no token"
[ "$(cb "call=$call&attempt=1&token=$CB_TOKEN" -d 'CallSid=x&Status=completed')" = 401 ] || fail "the static token opened an attempt dialed since the upgrade"
[ "$(cb "token=$tok" -d 'CallSid=x&Status=completed')" = 400 ] || fail "no call id"
[ "$(cb "call=$call&attempt=1&token=$tok" -H 'Content-Type: application/json' -d '{"Status":')" = 400 ] || fail "malformed"
[ "$(cb "call=call_nope&attempt=1&token=$(cb_token call_nope 1)" -d 'CallSid=x&Status=completed')" = 404 ] || fail "unknown call"
[ "$(cb "call=$call&attempt=1&token=$tok" -d 'CallSid=x&Status=busy')" = 200 ] || fail "repeat on a final call"
call_is "$call" '"status":"completed"' || fail "a late callback changed a final call"

# --- per-attempt tokens and the CallSid (issue 15): a live attempt (its callback lost) is not
# finished by another attempt's token, nor by its own token with another CallSid (a restart with a
# long grace, so no lookup through call details finishes the attempt meanwhile)
stop_svc
start_svc EXOTEL_CALLBACK_GRACE_MS=60000
faults "exotel.cb_drop=100"
live=call_$(post_lead "Token Lead" 9800000130)
placed() { [ -n "$(attempt_sid "$live" 1)" ]; }
wait_for 15 "the attempt to be placed" placed
sid=$(attempt_sid "$live" 1)
[ "$(cb "call=$live&attempt=1&token=$(cb_token "$busy" 2)" -d "CallSid=$sid&Status=busy")" = 401 ] || fail "another call's token"
[ "$(cb "call=$live&attempt=1&token=$(cb_token "$live" 2)" -d "CallSid=$sid&Status=busy")" = 401 ] || fail "another attempt's token"
[ "$(cb "call=$live&attempt=2&token=$(cb_token "$live" 2)" -d "CallSid=$sid&Status=busy")" = 404 ] || fail "attempt 2 does not exist"
[ "$(cb "call=$live&attempt=1&token=$(cb_token "$live" 1)" -d "CallSid=f0rged%0AFORGED [INFO] dialer: forged&Status=busy")" = 409 ] || fail "a wrong CallSid"
grep -q "Callback refused: its CallSid is not the one Exotel returned for the attempt { callId: '$live', attempt: 1, callSid: 'f0rged\\\\nFORGED" "$T/svc.log" || fail "the refusal line (escaped)"
grep -q '^FORGED' "$T/svc.log" && fail "a CallSid forged a log line"
call_is "$live" '"state":"dispatched"' || fail "a refused callback changed the call: $(call_json "$live")"
# the genuine callback (a recording link on a host Exotel does not use is dropped with a WARN)
[ "$(cb "call=$live&attempt=1&token=$(cb_token "$live" 1)" -d "CallSid=$sid&Status=completed&RecordingUrl=http://evil.example/r.mp3")" = 200 ] || fail "the genuine callback"
faults reset
wait_for 10 "the genuine callback to finish the call" done_with "$live" completed
grep -q "RecordingUrl dropped: not an https link on a host Exotel documents { callId: '$live'" "$T/svc.log" || fail "no recording WARN"
grep -q "evil.example" <<<"$(attempt_row "$live" 1)" && fail "the recording link was kept"

# --- skips: no phone, invalid phone, the same phone again within the dedupe window
nophone=$(curl -s -X POST "$SVC_URL/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
    -d '{"name":"Email Only","email":"e@example.com"}' | grep -o 'ld_[0-9a-f]*')
badphone=$(curl -s -X POST "$SVC_URL/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
    -d '{"name":"Bad Phone","phone":"12345","email":"b@example.com"}' | grep -o 'ld_[0-9a-f]*')
again=$(post_lead "Same Phone" 9800000010)
skipped_as() { call_is "call_$1" "\"state\":\"skipped\".*\"status\":\"$2\""; }
wait_for 10 "no_phone skip" skipped_as "$nophone" no_phone
wait_for 10 "invalid_phone skip" skipped_as "$badphone" invalid_phone
wait_for 10 "duplicate skip" skipped_as "$again" duplicate
code=$(curl -s -o /dev/null -w '%{http_code}' "$SVC_URL/calls")
[ "$code" = 401 ] || fail "GET /calls without a key: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" "$SVC_URL/calls?state=maybe")
[ "$code" = 400 ] || fail "GET /calls?state=maybe: $code"

# --- calling hours: a lead outside the window waits for the next opening; an operator cancels it
stop_svc
h=$((10#$(TZ=Asia/Kolkata date +%H)))
open=$(((h + 2) % 24)); close=$(((h + 3) % 24))
hours=$(printf '%02d:00-%02d:00' $open $close)
start_svc CALL_HOURS="$hours" EXOTEL_DND_PRECHECK=true
expect=$(TZ=Asia/Kolkata date -d "$(printf '%02d:00' $open)" +%s)
[ "$expect" -gt "$(date +%s)" ] || expect=$((expect + 86400))
later=call_$(post_lead "Later Lead" 9800000118)
pending_until() { call_is "$1" "\"state\":\"pending\",\"dueAt\":$2"; }
wait_for 10 "the deferred call, due at the next opening" pending_until "$later" "${expect}000"
echo "CALL_HOURS=$hours (IST): the call waits until $(TZ=Asia/Kolkata date -d @"$expect" '+%F %H:%M %Z')"
del() { curl -s -o /dev/null -w '%{http_code}' -X DELETE "$SVC_URL/calls/$1" "${@:2}"; }
[ "$(del "$later")" = 401 ] || fail "cancel without a key"
[ "$(del call_nope -H "X-API-Key: $KEY")" = 404 ] || fail "cancel an unknown call"
[ "$(del "$later" -H "X-API-Key: $KEY")" = 200 ] || fail "cancel"
[ "$(del "$later" -H "X-API-Key: $KEY")" = 409 ] || fail "cancel twice"
call_is "$later" '"state":"canceled"' || fail "canceled: $(call_json "$later")"
[ "$(del "$call" -H "X-API-Key: $KEY")" = 409 ] || fail "cancel a finished call"

# --- the DND pre-check closes a DND number without dialing it
stop_svc
start_svc EXOTEL_DND_PRECHECK=true
pre=call_$(post_lead "Dnd Precheck" 9800000124)
wait_for 15 "the pre-checked DND number" done_with "$pre" dnd
[ "$(connects_of "$pre")" -eq 0 ] || fail "a DND number was dialed despite the pre-check"

# --- EXOTEL_ENABLED=false: leads are accepted and not called
stop_svc
start_svc EXOTEL_ENABLED=false
off=$(post_lead "Disabled" 9800000137)
wait_for 10 "disabled skip" skipped_as "$off" disabled
grep -q "📞 Exotel IVR calling is DISABLED" "$T/svc.log" || fail "no DISABLED banner"

# --- the dialer's stream: one final call.status per attempt, and every phone masked in the log
timeout 20 "$LEADBUS" tap --from=start dialer >"$T/status.jsonl" &
TAP=$!; PIDS+=("$TAP")
last_final() { grep -q "\"call_id\":\"$pre\".*\"final\":true" "$T/status.jsonl"; }
wait_for 20 "the dialer's stream up to the last call" last_final
kill "$TAP" 2>/dev/null || true
finals=$(grep '"final":true' "$T/status.jsonl" | grep -o '"call_id":"[^"]*","lead_id":"[^"]*","attempt":[0-9]*' | sort)
[ -z "$(uniq -d <<<"$finals")" ] || fail "attempts with two final statuses: $(uniq -d <<<"$finals")"
echo "dialer stream: $(wc -l <<<"$finals") final call.status events, one per attempt"
if grep -qE '98000001?[0-9]{2}' "$T/svc.log"; then fail "a phone number reached the log unmasked"; fi
stop_svc
