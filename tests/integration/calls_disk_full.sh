#!/usr/bin/env bash
# Issue 14: with the disk full, failed dispatches must not use up Exotel's rate-limit slots.
# The service's files are capped at 1 KiB (RLIMIT_FSIZE, set on the running process with
# prlimit: every SQLite commit then fails as on a full disk, reads still work) while calls
# fall due; once the cap is lifted the due calls must go out at once, not a rate-limit window
# (here 20 s) later, as they did when each failed dispatch transaction kept its slots.
. "$(dirname "$0")/calls_lib.sh"
command -v prlimit >/dev/null || { echo "prlimit not found: skipped"; exit 77; }
start_sandbox
export EXOTEL_CALL_DELAY_MS=2000 EXOTEL_RATE_LIMIT_CALLS=4 EXOTEL_RATE_LIMIT_WINDOW_MS=20000

# Its output goes through a pipe (a log file would hit the cap too); SIGXFSZ is ignored, so a
# write over the cap fails with EFBIG instead of killing the process.
(trap '' XFSZ && exec "$LEADBUS" --target=ingest,call-scheduler,dialer) > >(cat >>"$T/svc.log") 2>&1 &
SVC=$!
PIDS+=("$SVC")
wait_for 15 "ingest, call-scheduler and dialer" curl -fsS "$SVC_URL/readyz"

calls=()
for i in 1 2 3; do calls+=("call_$(post_lead "Disk Full $i" "980000150$i")"); done
pending_count() { curl -s -H "X-API-Key: $KEY" "$SVC_URL/calls?state=pending" | grep -o '"state":"pending"' | wc -l; }
three_pending() { [ "$(pending_count)" -eq 3 ]; }
wait_for 10 "the three calls to be scheduled" three_pending

prlimit --pid "$SVC" --fsize=1024:unlimited
failures() { grep -c "Cannot dispatch due calls" "$T/svc.log" || true; }
wait_for 20 "a dispatch to fail while the disk is full" eval '[ "$(failures)" -ge 1 ]'
# The disk stays full a while longer: with the old code, retries of the failed dispatch
# took the window's remaining slots (then found none left, so stopped failing).
t_full=$(date +%s%3N)
wait_for 10 "2 s of a full disk after the first failure" eval '[ $(($(date +%s%3N) - t_full)) -ge 2000 ]'
[ "$(connect_count)" -eq 0 ] || fail "a call went out while nothing could be committed"

prlimit --pid "$SVC" --fsize=unlimited:unlimited
t0=$(date +%s%3N)
wait_for 25 "the three calls after space returned" at_least_connects 3
stall=$(($(date +%s%3N) - t0))
for c in "${calls[@]}"; do [ "$(connects_of "$c")" -eq 1 ] || fail "$c: $(connects_of "$c") connects"; done
echo "disk full: $(failures) failed dispatch runs; the 3 due calls reached Exotel $stall ms after space returned (window 20000 ms)"
[ "$stall" -lt 5000 ] || fail "due calls stalled $stall ms after space returned: failed dispatches kept rate-limit slots"
