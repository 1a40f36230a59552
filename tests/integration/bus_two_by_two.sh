#!/usr/bin/env bash
# 5. Two publishers and two subscribers with different topic filters: each
#    subscriber gets exactly its streams from both publishers.
. "$(dirname "$0")/lib.sh"
N=10000
start subA "$PEER" sub --name leads --db "$T/a.db" --topics lead. \
    --source "ipc://$T/p1.ipc,ipc://$T/r1.ipc" --source "ipc://$T/p2.ipc,ipc://$T/r2.ipc" \
    --expect $((2 * N)) --timeout 150
A=$LAST_PID
start subB "$PEER" sub --name calls --db "$T/b.db" --topics call. \
    --source "ipc://$T/p1.ipc,ipc://$T/r1.ipc" --source "ipc://$T/p2.ipc,ipc://$T/r2.ipc" \
    --expect $((2 * N)) --timeout 150
B=$LAST_PID
start p1 "$PEER" pub --name alpha --db "$T/p1.db" --pub "ipc://$T/p1.ipc" \
    --replay "ipc://$T/r1.ipc" --topics lead.created,call.due --count $N --batch 50
start p2 "$PEER" pub --name beta --db "$T/p2.db" --pub "ipc://$T/p2.ipc" \
    --replay "ipc://$T/r2.ipc" --topics lead.synced,call.due --count $N --batch 50
wait_pid 160 "$A" || fail "lead subscriber incomplete"
wait_pid 160 "$B" || fail "call subscriber incomplete"
cat "$T/subA.log" "$T/subB.log"
"$PEER" verify --db "$T/a.db" alpha:lead.created:$N beta:lead.synced:$N
"$PEER" verify --db "$T/b.db" alpha:call.due:$N beta:call.due:$N
