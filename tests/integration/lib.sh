# Shared helpers for the integration tests: a temp dir, processes tracked by
# pid and killed on exit, and waiting for conditions with a deadline.
set -euo pipefail

: "${BUILD:?BUILD must point at the build directory}"
PEER="$BUILD/bus_peer"
LEADBUS="$BUILD/leadbus"
T=$(mktemp -d /tmp/leadbus-test.XXXXXX)
PIDS=()

# own_child PID: PID is still a child of this shell (running, or exited and not yet reaped).
# PIDS keeps every process a test started, most of them long gone; the kernel hands their
# numbers out again (pid_max is 32768 here, and a CI run wraps it every few minutes), so a
# kill by a stale number can hit another test's process: ctest runs two tests at once, all
# as root. chaos_split_tls lost its stats process so, "exited by itself" with a SIGKILL.
own_child() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) } # the fields after "(comm) ": state ppid ...
    set -- $stat
    [ "${2:-}" = "$$" ]
}

# kill_own SIGNAL PID...: signal those PIDs that are still this test's own children
kill_own() {
    local sig=$1 p
    shift
    for p in "$@"; do
        [ -n "$p" ] && own_child "$p" && kill "-$sig" "$p" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    kill_own 9 "${PIDS[@]:-}"
    wait 2>/dev/null || true
    if [ $rc -ne 0 ]; then
        echo "--- logs of the failed test ($T) ---"
        for f in "$T"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    fi
    [ -n "${KEEP_T:-}" ] || rm -rf "$T"  # KEEP_T=1 keeps a failed run for a look
    exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# start NAME CMD...: run CMD in the background with output in $T/NAME.log; sets $LAST_PID
start() {
    local name=$1; shift
    "$@" >>"$T/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 50 ms until it succeeds or time runs out
wait_for() {
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || fail "timed out after ${secs}s waiting for: $what"
        sleep 0.05
    done
}

# wait_pid SECONDS PID: wait for a process to exit by itself; returns its status
wait_pid() {
    local secs=$1 pid=$2
    local end=$((SECONDS + secs))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt $end ] || fail "process $pid still running after ${secs}s"
        sleep 0.05
    done
    local rc=0
    wait "$pid" || rc=$?
    return $rc
}

# A TCP port nothing listens on, below the kernel's ephemeral range (32768+): a port there
# can be taken as the local end of an outgoing connection (even a dial to that very port,
# which then connects to itself) while its service restarts.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    fail "no free port"
}
