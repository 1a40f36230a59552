#!/usr/bin/env bash
# Issue 15, frames tied to certificate identity: a subscriber dials a publisher verifying its
# certificate for the stream name it expects (ingest-0), so the frames on that connection must
# name that stream. A publisher with a valid certificate for ingest-0 announcing stream ingest-1
# (stream list, heartbeats and events) is refused: an ERROR naming both, nothing applied, through
# replay (stream list) or live only. The same publisher under its own name is followed.
. "$(dirname "$0")/lib.sh"
CERTS="$(cd "$(dirname "$0")/../.." && pwd)/deploy/bus-certs.sh"
cd "$T"
"$CERTS" "$T/certs" ingest-0 ingest-1 >/dev/null
export BUS_TLS_CA="$T/certs/ca.crt"
as() { echo BUS_TLS_CERT="$T/certs/$1.crt" BUS_TLS_KEY="$T/certs/$1.key"; }
P=$(free_port) R=$(free_port)
# shellcheck disable=SC2046
start liar env $(as ingest-0) "$PEER" pub --name ingest-1 --db "$T/liar.db" \
    --pub "tls+tcp://127.0.0.1:$P" --replay "tls+tcp://127.0.0.1:$R" --topics lead.created \
    --count 5 --start-file "$T/go"
LIAR=$LAST_PID
# shellcheck disable=SC2046
sub() { # NAME SOURCE EXPECT TIMEOUT_S
    start "$1" env $(as stats) "$PEER" sub --name "$1" --db "$T/$1.db" --source "$2" \
        --expect "$3" --timeout "$4"
}
sub replayed "tls+tcp://127.0.0.1:$P,tls+tcp://127.0.0.1:$R,ingest-0" 1 12
A=$LAST_PID
sub live "tls+tcp://127.0.0.1:$P,,ingest-0" 1 12
B=$LAST_PID
refused() { grep -q 'ERROR.*Bus frames refused.*certificate.*ingest-0.*stream.*ingest-1' "$T/$1.log"; }
wait_for 20 "the stream list refused" refused replayed
wait_for 20 "the heartbeats refused" refused live
touch "$T/go" # the liar publishes its events now, live to both
rc=0; wait_pid 30 $A || rc=$?
[ $rc -eq 3 ] || fail "the subscriber with replay applied the liar's events (exit $rc)"
rc=0; wait_pid 30 $B || rc=$?
[ $rc -eq 3 ] || fail "the live-only subscriber applied the liar's events (exit $rc)"
grep -q 'applied=0 ' "$T/replayed.log" && grep -q 'applied=0 ' "$T/live.log" ||
    fail "events applied: $(grep applied= "$T"/replayed.log "$T"/live.log)"
kill -TERM $LIAR; wait_pid 15 $LIAR || true
# The same certificate under its own stream name is followed.
P2=$(free_port) R2=$(free_port)
# shellcheck disable=SC2046
start honest env $(as ingest-0) "$PEER" pub --name ingest-0 --db "$T/honest.db" \
    --pub "tls+tcp://127.0.0.1:$P2" --replay "tls+tcp://127.0.0.1:$R2" --topics lead.created --count 5
HONEST=$LAST_PID
sub followed "tls+tcp://127.0.0.1:$P2,tls+tcp://127.0.0.1:$R2,ingest-0" 5 30
wait_pid 40 $LAST_PID || fail "the honest publisher was not followed: $(tail -n 3 "$T/followed.log")"
! grep -q 'Bus frames refused' "$T/followed.log" || fail "an honest publisher's frames were refused"
kill -TERM $HONEST; wait_pid 15 $HONEST || true
echo "bus_tls_identity: ingest-0's certificate announcing ingest-1 refused (replay and live, nothing applied); under its own name followed"
