#!/usr/bin/env bash
# 2. A subscriber whose SUB socket drops messages (a one-message receive queue
#    and a slow handler under a burst) still applies every event exactly once.
. "$(dirname "$0")/lib.sh"
N=10000
start sub "$PEER" sub --name slow --db "$T/sub.db" --recvbuf 1 --slow-us 30 \
    --source "ipc://$T/pub.ipc,ipc://$T/replay.ipc" --expect $N --timeout 120
SUB=$LAST_PID
start pub "$PEER" pub --name alpha --db "$T/pub.db" --pub "ipc://$T/pub.ipc" \
    --replay "ipc://$T/replay.ipc" --topics call.due --count $N --batch 200 --start-file "$T/go"
# The burst starts once the subscriber is attached, so events arrive live and get dropped.
wait_for 30 "subscriber attached" grep -q "ready" "$T/sub.log"
touch "$T/go"
wait_pid 150 "$SUB" || fail "subscriber did not finish"
cat "$T/sub.log"
grep -Eq "gaps=[1-9]" "$T/sub.log" || fail "the burst caused no drops: the test did not test recovery"
"$PEER" verify --db "$T/sub.db" alpha:call.due:$N
