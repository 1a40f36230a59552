#!/usr/bin/env bash
# `leadbus tap` is a subscriber that is not a service: it replays a stream from
# the start and prints every event as a JSON line, in order.
. "$(dirname "$0")/lib.sh"
N=500
start pub "$PEER" pub --name alpha --db "$T/pub.db" --pub "ipc://$T/p.ipc" \
    --replay "ipc://$T/r.ipc" --topics lead.created,call.due --count $N --batch 100
wait_for 30 "publisher" grep -q "appended $((2 * N)) events" "$T/pub.log"

timeout 30 "$LEADBUS" tap --topic=lead. --count=$N "ipc://$T/p.ipc,ipc://$T/r.ipc" >"$T/tap.out"
lines=$(wc -l <"$T/tap.out")
[ "$lines" -eq $N ] || fail "tap printed $lines lines, expected $N"
grep -c '"topic":"lead.created"' "$T/tap.out" | grep -cx $N >/dev/null || fail "tap printed other topics"
head -n 1 "$T/tap.out" | grep -c '"src":"alpha","topic":"lead.created","seq":1,' >/dev/null || fail "first line wrong: $(head -n1 "$T/tap.out")"
tail -n 1 "$T/tap.out" | grep -c "\"seq\":$N,.*\"lead_id\":\"L$N\"" >/dev/null || fail "last line wrong"
# seq strictly 1..N in order
seqs=$(grep -o '"seq":[0-9]*' "$T/tap.out" | cut -d: -f2 | tr '\n' ' ')
[ "$seqs" = "$(seq 1 $N | tr '\n' ' ')" ] || fail "tap lines out of order"

# A third-party subscriber (nngcat) attaches to the same PUB socket and sees frames
# whose topic prefix it can filter on, with no leadbus code.
if command -v nngcat >/dev/null; then
    start nngcat timeout 10 nngcat --sub --dial "ipc://$T/p.ipc" --subscribe "_hb" --raw --count 1
    wait_pid 15 "$LAST_PID" || fail "nngcat did not receive a heartbeat"
    grep -q "_hb" "$T/nngcat.log" || fail "nngcat frame lacks the topic prefix"
fi
echo "tap: $N events in order"
