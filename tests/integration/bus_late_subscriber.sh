#!/usr/bin/env bash
# 1. A subscriber started after the publisher has published everything catches up by replay.
. "$(dirname "$0")/lib.sh"
N=10000
start pub "$PEER" pub --name alpha --db "$T/pub.db" --pub "ipc://$T/pub.ipc" \
    --replay "ipc://$T/replay.ipc" --topics lead.created --count $N --batch 50
wait_for 60 "publisher to commit $N events" grep -q "appended $N events" "$T/pub.log"

"$PEER" sub --name late --db "$T/sub.db" --source "ipc://$T/pub.ipc,ipc://$T/replay.ipc" \
    --expect $N --timeout 60 | tee "$T/sub.out"
grep -q "replayed=$N " "$T/sub.out" || fail "expected every event to arrive by replay"
"$PEER" verify --db "$T/sub.db" alpha:lead.created:$N
