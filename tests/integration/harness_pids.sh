#!/usr/bin/env bash
# The harness's own cleanup may signal only its own children. A pid in PIDS whose process has
# gone can belong to another test's process by the time cleanup runs (pids are reused, ctest
# runs two tests at once as root): here a process that is not this shell's child stands in for
# it, listed in PIDS, and must outlive the cleanup; this test's own child must not.
. "$(dirname "$0")/lib.sh"
(sleep 60 >/dev/null 2>&1 & echo $! >"$T/stranger") # a grandchild: reparented, not ours
STRANGER=$(cat "$T/stranger")
trap 'rc=$?; kill -9 "$STRANGER" 2>/dev/null; (exit $rc); cleanup' EXIT
start mine sleep 60
MINE=$LAST_PID
PIDS+=("$STRANGER")
own_child "$MINE" || fail "own_child: $MINE is this shell's child"
! own_child "$STRANGER" || fail "own_child: $STRANGER is not this shell's child"
kill_own 9 "${PIDS[@]}"
wait_for 5 "this test's own child killed" eval "! kill -0 $MINE"
kill -0 "$STRANGER" || fail "kill_own killed a process that was not this test's child"
kill -9 "$STRANGER"
echo "cleanup signals its own children only"
