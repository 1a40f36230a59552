#!/usr/bin/env bash
# Split mode, the way pods run it: sandbox, two ingest replicas (each its own
# stream), zoho-sync, call-scheduler, dialer and stats as seven processes over
# tcp://127.0.0.1; the subscribers dial both ingest replicas. Leads keep
# coming (each retried with its Idempotency-Key until accepted) while every
# service is SIGKILLed in turn and restarted. Afterwards: every lead is in
# Zoho once, every call placed once and completed, and /exotel/stats agrees
# with the sandbox's own records.
TOPOLOGY=split
export SANDBOX_OUTCOME_MODE=last-digit # phones end in 4: every call completes
. "$(dirname "$0")/cluster_lib.sh"
N=120
cluster_up
poster $N 94000 >"$T/poster.out" 2>&1 &
POSTER=$!
PIDS+=("$POSTER")
k=0
for svc in ingest zoho-sync call-scheduler dialer stats; do
    k=$((k + 20)) # leads keep arriving between the kills: one kill per 20 accepted
    wait_for 60 "$k leads accepted" posted_at_least $k
    kill -9 "${PID[$svc]}"; wait "${PID[$svc]}" 2>/dev/null || true
    echo "SIGKILLed $svc"
    up $svc
done
wait_pid 120 "$POSTER" || fail "the poster failed: $(cat "$T/poster.out")"
# Every call completes (phones ending in 4); a SIGKILL mid-request may cost an attempt that
# Exotel never got (reconciled as not placed, then retried), so attempts may exceed N.
settled() {
    curl -s "$S/exotel/stats" | grep -c "\"pending\":0,\"total\":$N,.*\"completed\":$N,.*\"unknown\":0},\"attempts\":[0-9]*,.*\"received\":$N,\"synced\":$N" >/dev/null
}
wait_for 120 "every call completed and every lead synced, per stats" settled
calls=$(placed | cut -d' ' -f1 | sort)
zoho=$(zoho_ids | sort)
echo "split mode: $N leads; $(wc -l <<<"$calls") calls placed for $(uniq <<<"$calls" | wc -l) attempts; $(wc -l <<<"$zoho") Zoho records for $(uniq <<<"$zoho" | wc -l) leads"
echo "stats: $(curl -s "$S/exotel/stats")"
[ "$(wc -l <<<"$calls")" -eq $N ] && [ "$(uniq <<<"$calls" | wc -l)" -eq $N ] || fail "calls lost or placed twice"
[ "$(wc -l <<<"$zoho")" -eq $N ] && [ "$(uniq <<<"$zoho" | wc -l)" -eq $N ] || fail "Zoho records lost or duplicated"
streams=$(curl -s "$S/metrics" | grep -o 'publisher="ingest-[01]",topic="lead.created"' | sort -u | wc -l)
[ "$streams" -eq 2 ] || fail "stats should follow two ingest streams, sees $streams"
cluster_down
