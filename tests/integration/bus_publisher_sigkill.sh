#!/usr/bin/env bash
# 4. A publisher killed right after a commit, before sending, still delivers
#    those events after it restarts.
. "$(dirname "$0")/lib.sh"
N=10000
HALF=$((N / 2))
PUB="tcp://127.0.0.1:$(free_port)"
REP="tcp://127.0.0.1:$(free_port)"
start sub "$PEER" sub --name s --db "$T/sub.db" --source "$PUB,$REP" --expect $N --timeout 120
SUB=$LAST_PID

start pub1 "$PEER" pub --name alpha --db "$T/pub.db" --pub "$PUB" --replay "$REP" \
    --topics call.due --count $HALF --batch 20
P1=$LAST_PID
wait_for 60 "first half committed" grep -q "appended $HALF events" "$T/pub1.log"
kill -TERM "$P1"; wait_pid 20 "$P1"

# Commits the second half and SIGKILLs itself before any of it is sent.
rc=0
"$PEER" pub --name alpha --db "$T/pub.db" --topics call.due --count $N --batch 20 \
    --append-only >"$T/crash.log" 2>&1 || rc=$?
[ $rc -eq 137 ] || fail "the crashing publisher should die by SIGKILL (status $rc)"
grep -q "appended $HALF events" "$T/crash.log" || fail "second half was not committed"

start pub2 "$PEER" pub --name alpha --db "$T/pub.db" --pub "$PUB" --replay "$REP" \
    --topics call.due --count $N
wait_for 30 "restarted publisher" grep -q "appended 0 events" "$T/pub2.log"
wait_pid 90 "$SUB" || fail "subscriber did not get every event"
cat "$T/sub.log"
"$PEER" verify --db "$T/sub.db" alpha:call.due:$N
