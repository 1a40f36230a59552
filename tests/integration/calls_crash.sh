#!/usr/bin/env bash
# Nothing lost, nothing dialed twice, limits kept — across crashes:
# 500 leads due within seconds with the process SIGKILLed three times while
# it dials them: every call is placed exactly once (counted per call at the
# sandbox) and ends completed. Then the rate limit (10 per 2 s): 60 leads due
# at once with a SIGKILL in the middle; at the sandbox no 2 s window holds
# more than 10 connects, and the backlog drains at the full allowed rate.
. "$(dirname "$0")/calls_lib.sh"

# --- 500 calls, three SIGKILLs mid-dispatch
start_sandbox SANDBOX_EXOTEL_RATE_LIMIT=100 SANDBOX_EXOTEL_RATE_WINDOW_MS=1000
export EXOTEL_CALL_DELAY_MS=2000 EXOTEL_RATE_LIMIT_CALLS=98 EXOTEL_RATE_LIMIT_WINDOW_MS=1000 \
    EXOTEL_RECONCILE_DELAY_MS=300 EXOTEL_RECONCILE_WINDOW_MS=2000 EXOTEL_HTTP_TIMEOUT_MS=2000 \
    EXOTEL_CALLBACK_GRACE_MS=3000 EXOTEL_RETRY_DELAYS_MS=300
N=500
start_svc
post_many $N 97000
for k in 120 260 400; do
    wait_for 60 "$k connects" at_least_connects $k
    kill -9 "$SVC"; wait "$SVC" 2>/dev/null || true
    echo "SIGKILL with $(connect_count) of $N calls placed"
    start_svc
done
wait_for 120 "every call to finish" none_pending
done_list=$(curl -s -H "X-API-Key: $KEY" "$SVC_URL/calls?state=done&limit=1000")
completed=$(grep -o '"state":"done","status":"completed"' <<<"$done_list" | wc -l)
distinct=$(connect_log | awk '{print $2}' | sort -u | wc -l)
total=$(connect_count)
twice=$(connect_log | awk '{print $2}' | sort | uniq -d | wc -l)
echo "$N leads: $total connect requests for $distinct calls, $twice called twice, $completed completed"
[ "$total" -eq $N ] && [ "$distinct" -eq $N ] && [ "$twice" -eq 0 ] || fail "calls lost or placed twice"
[ "$completed" -eq $N ] || fail "only $completed of $N calls completed"
windows_ok 100 1000 || fail "the sandbox's rate limit was exceeded"

# --- a SIGKILL while a connect request is in flight (the sandbox holds it 1.5 s, then answers
# 504 without placing): the restart reconciles that attempt instead of redialing it blindly
curl -fsS -X POST "$SBURL/sandbox/faults" -d "exotel.timeout=100" >/dev/null
hang=call_$(post_lead "Hanging" 9500000004)
executing() { grep -q "Executing call { callId: '$hang'" "$T/svc.log"; }
wait_for 15 "the dialer to send the connect (the sandbox holds it 1.5 s)" executing
kill -9 "$SVC"; wait "$SVC" 2>/dev/null || true
curl -fsS -X POST "$SBURL/sandbox/faults" -d reset >/dev/null
start_svc
grep -q "Attempts were being dialed when the dialer stopped; reconciling them with Exotel { attempts: 1 }" "$T/svc.log" ||
    fail "the in-flight attempt was not reconciled after the restart"
wait_for 30 "the interrupted call to complete" call_is "$hang" '"state":"done","status":"completed"'
[ "$(connects_of "$hang")" -eq 2 ] && call_is "$hang" '"attempt":2' ||
    fail "interrupted call: $(connects_of "$hang") connects, $(call_json "$hang")"
echo "a SIGKILL mid-request: reconciled as not placed, then attempt 2 completed (2 connects in all)"
stop_svc
kill -TERM "${PIDS[0]}"; wait_pid 15 "${PIDS[0]}"

# --- the rate limit: 10 per 2 s, 60 due at once, a SIGKILL in the middle
rm -rf "$T/svc"
start_sandbox SANDBOX_EXOTEL_RATE_LIMIT=10 SANDBOX_EXOTEL_RATE_WINDOW_MS=2000
export EXOTEL_CALL_DELAY_MS=1000 EXOTEL_RATE_LIMIT_CALLS=10 EXOTEL_RATE_LIMIT_WINDOW_MS=2000
start_svc
post_many 60 96000
wait_for 30 "25 connects" at_least_connects 25
killed_ms=$(date +%s%3N)
kill -9 "$SVC"; wait "$SVC" 2>/dev/null || true
echo "SIGKILL after $(connect_count) of 60 rate-limited calls"
start_svc
down=$(($(date +%s%3N) - killed_ms)) # the restart itself: no process, no connects
wait_for 60 "the rate-limited backlog to drain" none_pending
windows_ok 10 2000 || fail "more than 10 connects in a 2 s window"
[ "$(connect_count)" -eq 60 ] || fail "$(connect_count) connects for 60 calls"
read -r first last <<<"$(connect_log | awk 'NR == 1 {f = $1} {l = $1} END {print f, l}')"
span=$((last - first))
echo "60 calls at 10 per 2 s drained in $span ms with $down ms of restart (the limit allows it in 5 windows: 10000 ms + the margin, 100 ms a window)"
# At the full allowed rate: 12.5 s (5 windows, their margins, 2 s of slack) plus the time the
# process was down; the limiter itself may not lose any.
[ $span -ge 10000 ] && [ $span -lt $((12500 + down)) ] || fail "drain took $span ms ($down ms down)"
grep -q "Exotel rate limit hit" "$T/svc.log" && fail "Exotel answered 429: the limit was not kept"
stop_svc
