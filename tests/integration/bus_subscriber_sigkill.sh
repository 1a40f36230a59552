#!/usr/bin/env bash
# 3. A subscriber SIGKILLed at random points and restarted ends with no event
#    missing and none applied twice.
. "$(dirname "$0")/lib.sh"
N=10000
PUB_URL="tcp://127.0.0.1:$(free_port)"
SRC="$PUB_URL,ipc://$T/replay.ipc"
start pub "$PEER" pub --name alpha --db "$T/pub.db" --pub "$PUB_URL" \
    --replay "ipc://$T/replay.ipc" --topics lead.synced --count $N --batch 5 --pause-us 2000

kills=0
for round in 1 2 3 4 5; do
    start sub "$PEER" sub --name victim --db "$T/sub.db" --source "$SRC" --expect $N --timeout 120
    victim=$LAST_PID
    # A random moment while events are flowing (this is the chaos, not a wait for a condition).
    sleep "0.$((RANDOM % 9 + 1))"
    if kill -9 "$victim" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$victim" 2>/dev/null || true
done
echo "subscriber SIGKILLed $kills times"
[ $kills -ge 3 ] || fail "the subscriber finished before it could be killed enough"

"$PEER" sub --name victim --db "$T/sub.db" --source "$SRC" --expect $N --timeout 120
"$PEER" verify --db "$T/sub.db" alpha:lead.synced:$N
