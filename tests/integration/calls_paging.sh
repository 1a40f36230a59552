#!/usr/bin/env bash
# Reconciliation reads every page of Exotel's bulk call details (exotel.md §7: PageSize at
# most 100, Metadata.NextPageUri with an After cursor). One number is called more than 100
# times; then a connect is answered 504 although Exotel placed the call (and its callback is
# lost). That call is on the second page of the number's calls: the dialer must find it there
# and adopt it, never redial it and never mark it "not placed".
. "$(dirname "$0")/calls_lib.sh"
PHONE=9800002004 # ends in 4: the sandbox completes it
N=105
start_sandbox SANDBOX_RING_MS=50 SANDBOX_EXOTEL_RATE_LIMIT=100000
export EXOTEL_CALL_DELAY_MS=0 CALL_DEDUPE_WINDOW_MS=0 MAX_CALLS_PER_NUMBER_PER_DAY=0 EXOTEL_RATE_LIMIT_CALLS=100000 \
    EXOTEL_RECONCILE_DELAY_MS=300 EXOTEL_RECONCILE_WINDOW_MS=3000 EXOTEL_CALLBACK_GRACE_MS=60000 \
    EXOTEL_HTTP_TIMEOUT_MS=2000 EXOTEL_MAX_RETRIES=1
start_svc
faults() { curl -fsS -X POST "$SBURL/sandbox/faults" -d "$1" >/dev/null; }

# N leads with the same phone (no dedupe window), 16 at a time.
for i in $(seq 1 "$N"); do
    printf 'url = "%s/leads"\nheader = "Content-Type: application/json"\nheader = "X-API-Key: %s"\n' "$SVC_URL" "$KEY"
    printf 'data = "{\\"name\\":\\"Same Number %d\\",\\"phone\\":\\"%s\\"}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\\\n"\n' "$i" "$PHONE"
    [ "$i" -lt "$N" ] && echo next
done >"$T/same.cfg"
curl -s --no-progress-meter --parallel --parallel-max 16 -K "$T/same.cfg" >"$T/codes"
[ "$(grep -c '^202$' "$T/codes")" -eq "$N" ] || fail "not every lead was accepted: $(sort "$T/codes" | uniq -c)"

# Every call to the number has ended (bulk call details list finished calls only).
done_calls() { curl -s "$SBURL/sandbox/exotel/placed" | grep -o '"status":"completed"' | wc -l; }
placed_calls() { curl -s "$SBURL/sandbox/exotel/placed" | grep -o '"sid"' | wc -l; }
all_done() { [ "$(done_calls)" -ge 101 ] && [ "$(done_calls)" -eq "$(placed_calls)" ]; }
wait_for 180 "over 100 finished calls to $PHONE" all_done
wait_for 30 "no call pending (each lead called or skipped)" none_pending
all_done || fail "a call started after the others had ended"
before=$(placed_calls)
echo "paging: $before finished calls to one number before the unknown one"

faults "exotel.504_after_place=100,exotel.cb_drop=100"
c504=call_$(post_lead "Lost On Page Two" "$PHONE")
done_with() { call_is "$1" "\"state\":\"done\".*\"status\":\"$2\""; }
wait_for 30 "the 504 call to be reconciled from a later page" done_with "$c504" completed
faults reset
call_is "$c504" "found by reconciliation" || fail "504: $(call_json "$c504")"
[ "$(connects_of "$c504")" -eq 1 ] || fail "the 504 call was redialed: $(connects_of "$c504") connects"
grep -q "Reconciled: Exotel never placed the call { callId: '$c504'" "$T/svc.log" && fail "marked not placed"
line=$(grep "Reconciled: Exotel placed the call { callId: '$c504'" "$T/svc.log") || fail "no reconciliation line"
pages=$(grep -o 'pages: [0-9]*' <<<"$line" | grep -o '[0-9]*')
[ "$pages" -ge 2 ] || fail "found on page $pages: the test did not need paging"
# What the dialer asked: pages of 100, the next one by the After cursor of NextPageUri.
reqs=$(curl -s "$SBURL/sandbox/requests?api=exotel" | grep -o '"path":"[^"]*/Calls.json","summary":"[^"]*"')
grep -q 'PageSize=100 After=(set)' <<<"$reqs" || fail "no second page was asked for: $reqs"
echo "paging: the 504'd call (number called $before times before) found on page $pages, adopted, not redialed"
stop_svc
