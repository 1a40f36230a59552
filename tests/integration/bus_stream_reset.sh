#!/usr/bin/env bash
# Issue 14, case 1: a publisher's store is lost or reset. Real processes over
# tcp://: the sandbox, one ingest replica, zoho-sync, call-scheduler, dialer and
# stats. Before epochs, an ingest whose store was deleted numbered its events
# from 1 again and every subscriber dropped them as duplicates (12 leads got
# 202, 2 reached Zoho; nothing above INFO). Now:
#  1. ingest.db deleted: every lead posted after it reaches zoho-sync (the
#     sandbox's Zoho has it) and the call-scheduler (the sandbox's Exotel
#     placed its call); each subscriber logs an ERROR naming the publisher and
#     both epochs and counts leadbus_bus_stream_resets_total.
#  2. ingest.db restored from an old backup alone (same epoch, seqs behind the
#     cursors): detected from the stream list, the stream is applied again from
#     seq 1; the leads posted after the restore arrive, nothing is in Zoho or
#     called twice, and stats counts every lead and attempt once.
TOPOLOGY=split
export SANDBOX_OUTCOME_MODE=last-digit # phones end in 4: every call completes
. "$(dirname "$0")/cluster_lib.sh"
SERVICES=(ingest zoho-sync call-scheduler dialer stats) # one ingest replica, "ingest-0"
export BUS_INGEST_PUB=$I0P BUS_INGEST_REPLAY=$I0R
I="http://127.0.0.1:${PORT[ingest]}"

post() { # FROM TO: leads FROM..TO to ingest; their ids appended to $T/leads
    for n in $(seq "$1" "$2"); do
        local out
        out=$(curl -s --max-time 5 -X POST "$I/leads" -H "Content-Type: application/json" \
            -H "X-API-Key: $KEY" -H "Idempotency-Key: reset-$n" \
            -d "{\"name\":\"Reset $n\",\"phone\":\"93100$(printf '%04d' "$n")4\"}")
        grep -o '"leadId":"ld_[0-9a-f]*"' <<<"$out" | cut -d'"' -f4 >>"$T/leads" ||
            fail "lead $n not accepted: $out"
    done
}
in_zoho() { [ "$(zoho_ids | sort -u | wc -l)" -eq "$(wc -l <"$T/leads")" ]; }
called() { [ "$(placed | wc -l)" -eq "$(wc -l <"$T/leads")" ]; }
all_there() { in_zoho && called; }
epoch_of_ingest() { # Nth start's epoch, from its "Publishing" line
    grep "Publishing {" "$T/ingest.log" | sed -n "$1p" | grep -o "epoch: '[0-9a-f]*'" | cut -d"'" -f2
}
restart_ingest() {
    up ingest
    wait_for 20 "ingest ready" curl -fsS "$I/readyz"
}
# Every lead id posted is in Zoho once and was called once.
check_once() {
    local zoho calls
    zoho=$(zoho_ids | cut -d'"' -f4 | sort)
    calls=$(placed | cut -d' ' -f1 | sort)
    [ "$zoho" = "$(sort "$T/leads")" ] || fail "Zoho's leads differ from those posted"
    [ "$(wc -l <<<"$calls")" -eq "$(wc -l <"$T/leads")" ] && [ "$(uniq <<<"$calls" | wc -l)" -eq "$(wc -l <"$T/leads")" ] ||
        fail "calls lost or placed twice: $(wc -l <<<"$calls") for $(wc -l <"$T/leads") leads"
}

cluster_up
: >"$T/leads"
post 1 8
wait_for 60 "the first 8 leads in Zoho and called" all_there
E1=$(epoch_of_ingest 1)
[ -n "$E1" ] || fail "ingest did not log its epoch"

# --- 1. the store is deleted (a replaced volume) ---
kill -9 "${PID[ingest]}"; wait "${PID[ingest]}" 2>/dev/null || true
rm -rf "$T/ingest"
restart_ingest
E2=$(epoch_of_ingest 2)
[ -n "$E2" ] && [ "$E2" != "$E1" ] || fail "a new store must have a new epoch ($E1, $E2)"
post 9 20
wait_for 60 "the 12 leads posted after the deletion in Zoho and called" all_there
for svc in zoho-sync call-scheduler stats; do
    grep -q "\[ERROR\].*Publisher stream reset.*publisher: 'ingest-0', oldEpoch: '$E1', newEpoch: '$E2'" "$T/$svc.log" ||
        fail "$svc did not log the reset with both epochs"
    curl -s "http://127.0.0.1:${PORT[$svc]}/metrics" |
        grep -c "^leadbus_bus_stream_resets_total{subscriber=\"$svc\",publisher=\"ingest-0\"} 1$" >/dev/null ||
        fail "$svc does not count the reset"
done
check_once
echo "deleted store: 12 of 12 leads posted after it in Zoho and called; resets logged and counted"

# --- 2. the store is restored from an old backup alone ---
kill -TERM "${PID[ingest]}"; wait_pid 15 "${PID[ingest]}"
mkdir "$T/backup"
cp "$T/ingest/"ingest.db* "$T/backup/" # 12 events (leads 9..20) in epoch E2
restart_ingest
post 21 25
wait_for 60 "leads 21..25 in Zoho and called" all_there
kill -9 "${PID[ingest]}"; wait "${PID[ingest]}" 2>/dev/null || true
rm -f "$T/ingest/"ingest.db*
cp "$T/backup/"ingest.db* "$T/ingest/"
restart_ingest
# The restored stream ends at 12, the subscribers' cursors at 17: the stream list shows it.
# (Leads posted before a subscriber has noticed, and past its cursor, would be missed: see
# proto/README.md, Epochs. The check waits for the subscribers first.)
for svc in zoho-sync call-scheduler stats; do
    wait_for 30 "$svc to notice the restored stream" \
        grep -q "\[ERROR\].*Publisher stream went back.*publisher: 'ingest-0'.*lastSeq: 12" "$T/$svc.log"
done
post 26 31
wait_for 60 "the 6 leads posted after the restore in Zoho and called" all_there
check_once
N=$(wc -l <"$T/leads")
stats_once() {
    curl -s "$S/exotel/stats" | grep -c "\"total\":$N,.*\"attempts\":$N,.*\"received\":$N," >/dev/null
}
wait_for 30 "stats to count $N leads, calls and attempts once each" stats_once
echo "restored store: leads 9..20 applied again, nothing twice; $N leads in Zoho and called once each"
cluster_down
