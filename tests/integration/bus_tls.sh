#!/usr/bin/env bash
# Issue 15, the bus: mutual TLS over tls+tcp://127.0.0.1 with certificates from
# deploy/bus-certs.sh (made in the test's temp dir).
#  1. leads flow ingest -> stats over TLS, and a `leadbus tap` with a certificate replays them;
#  2. a subscriber without a client certificate, or with one from another CA, receives nothing
#     (not even a heartbeat), and the publisher logs a WARN;
#  3. a squatting publisher (leadbus --target=ingest with the CA's certificate for `stats`) on
#     the ingest ports while ingest is down gets no forged lead into stats, which logs a WARN;
#     the real ingest, back, is followed again;
#  4. start-up refusals (exit 2, one line naming the variable): partial TLS settings, plain
#     tcp:// off loopback without BUS_INSECURE=true, tls+tcp:// without certificates, several
#     ingest replicas without one BUS_INGEST_NAME each, a file that is not PEM.
. "$(dirname "$0")/lib.sh"
CERTS="$(cd "$(dirname "$0")/../.." && pwd)/deploy/bus-certs.sh"
cd "$T"
KEY=test-key-0123456789abcdef
C="$T/certs"
"$CERTS" "$C" >/dev/null
"$CERTS" "$T/rogue" >/dev/null # another CA, same names
[ "$(stat -c %a "$C/ingest.key")" = 600 ] || fail "bus-certs.sh: keys must be 0600"
export API_KEYS=$KEY HTTP_BIND=127.0.0.1 BUS_TLS_CA="$C/ca.crt"
bus=$(free_port)
i=0
for pub in INGEST ZOHO_SYNC CALL_SCHEDULER DIALER; do # every publisher on TLS; only ingest runs
    export "BUS_${pub}_PUB=tls+tcp://127.0.0.1:$((bus + 2 * i))" "BUS_${pub}_REPLAY=tls+tcp://127.0.0.1:$((bus + 2 * i + 1))"
    i=$((i + 1))
done
IP=$(free_port) SP=$(free_port)
S="http://127.0.0.1:$SP"
as() { echo BUS_TLS_CERT="$C/$1.crt" BUS_TLS_KEY="$C/$1.key"; } # NAME: that target's certificate
# shellcheck disable=SC2046
ingest_up() { start "${1:-ingest}" env PORT=$IP DATA_DIR="$T/${2:-ingest}" $(as "${3:-ingest}") "$LEADBUS" --target=ingest; PID_I=$LAST_PID; }
post() { # N PREFIX: N leads to whatever listens on the ingest port
    for n in $(seq 1 "$1"); do
        curl -fsS -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$IP/leads" -H "X-API-Key: $KEY" \
            -H "Content-Type: application/json" \
            -d "{\"name\":\"Lead $n\",\"phone\":\"$2$(printf '%04d' "$n")4\",\"email\":\"l$n@example.com\"}" ||
            fail "lead $n not accepted"
    done
}
received() { curl -s "$S/exotel/stats" | grep -c "\"received\":$1[,}]" >/dev/null; }

# 1. Leads flow over TLS.
ingest_up
# shellcheck disable=SC2046
start stats env PORT=$SP DATA_DIR="$T/stats" $(as stats) "$LEADBUS" --target=stats
PID_S=$LAST_PID
wait_for 20 "ingest ready" curl -fsS "http://127.0.0.1:$IP/readyz"
wait_for 20 "stats up" curl -fsS "$S/healthz"
post 5 91000
wait_for 20 "stats received 5 leads over tls+tcp" received 5
# shellcheck disable=SC2046
env $(as stats) timeout 20 "$LEADBUS" tap --count=5 ingest >"$T/tap.out" 2>"$T/tap.log" || fail "tap over TLS failed"
[ "$(grep -c '"topic":"lead.created"' "$T/tap.out")" -eq 5 ] || fail "tap replayed $(wc -l <"$T/tap.out") events, not 5"
echo "ok: 5 leads ingest -> stats over tls+tcp://, and replayed to a tap with a certificate"

# 2. Unauthenticated subscribers receive nothing (heartbeats go out every second).
if command -v nngcat >/dev/null; then
    rc=0
    timeout 4 nngcat --sub --dial "$BUS_INGEST_PUB" --insecure --subscribe "" --raw --count 1 >"$T/nocert.out" 2>&1 || rc=$?
    [ ! -s "$T/nocert.out" ] || grep -cv '_hb' "$T/nocert.out" >/dev/null || fail "a subscriber without a certificate got frames"
    grep -q '_hb' "$T/nocert.out" && fail "a subscriber without a certificate got a heartbeat"
    rc=0
    timeout 4 nngcat --sub --dial "$BUS_INGEST_PUB" --insecure --cert "$T/rogue/stats.crt" --key "$T/rogue/stats.key" \
        --subscribe "" --raw --count 1 >"$T/rogue.out" 2>&1 || rc=$?
    grep -q '_hb' "$T/rogue.out" && fail "a subscriber with another CA's certificate got a heartbeat"
    # Control: the same client with the CA's certificate does get one (--insecure: nngcat would
    # check the server's certificate for the host, 127.0.0.1, not for the stream name).
    timeout 10 nngcat --sub --dial "$BUS_INGEST_PUB" --insecure --cert "$C/stats.crt" --key "$C/stats.key" \
        --subscribe "_hb" --raw --count 1 >"$T/good.out" 2>&1 || fail "nngcat with the CA's certificate: $(cat "$T/good.out")"
    grep -q '_hb' "$T/good.out" || fail "nngcat with the CA's certificate got no heartbeat"
    wait_for 10 "ingest logs the refused subscribers" grep -q "Bus subscriber refused" "$T/ingest.log"
    echo "ok: subscribers without a certificate or with another CA's are refused; a CA certificate is served"
fi
# A tap with a certificate from another CA gets nothing either.
rc=0
env BUS_TLS_CA="$T/rogue/ca.crt" BUS_TLS_CERT="$T/rogue/stats.crt" BUS_TLS_KEY="$T/rogue/stats.key" \
    timeout 4 "$LEADBUS" tap --count=1 ingest >"$T/roguetap.out" 2>"$T/roguetap.log" || rc=$?
[ ! -s "$T/roguetap.out" ] || fail "a tap with another CA's certificate printed events"
echo "ok: a tap with another CA's certificate prints nothing"

# 3. A squatter on the ingest ports, with the CA's certificate for another name.
kill -TERM "$PID_I"
wait_pid 15 "$PID_I" || true
ingest_up squatter squatter stats
wait_for 20 "squatter up" curl -fsS "http://127.0.0.1:$IP/healthz"
post 3 92000
wait_for 15 "stats logs the refused publisher" grep -q "Bus publisher refused" "$T/stats.log"
sleep 2 # beyond a heartbeat or two: a subscriber that believed it would have applied them by now
received 5 || fail "forged leads reached stats: $(curl -s "$S/exotel/stats")"
# Read whole before grep -q: with pipefail, grep quitting at its match fails curl (SIGPIPE).
metrics=$(curl -s "$S/metrics")
grep -q 'leadbus_bus_tls_refused_total{side="dial",peer="ingest"}' <<<"$metrics" ||
    fail "no leadbus_bus_tls_refused_total for the squatter"
kill -TERM "$LAST_PID"
wait_pid 15 "$LAST_PID" || true
ingest_up ingest ingest ingest # the real one, back on its store
wait_for 20 "ingest ready again" curl -fsS "http://127.0.0.1:$IP/readyz"
post 1 93000
wait_for 20 "stats follows the real ingest again" received 6
echo "ok: a squatter with the certificate for 'stats' is refused (5 leads, not 8); the real ingest is followed again"
kill -TERM "$PID_I" "$PID_S"
wait_pid 15 "$PID_I" || true
wait_pid 15 "$PID_S" || true

# 4. Start-up refusals: exit 2 and one line naming the variable. Only ingest's endpoints are set.
IPUB=$BUS_INGEST_PUB IREP=$BUS_INGEST_REPLAY
unset BUS_INGEST_PUB BUS_INGEST_REPLAY BUS_ZOHO_SYNC_PUB BUS_ZOHO_SYNC_REPLAY BUS_CALL_SCHEDULER_PUB \
    BUS_CALL_SCHEDULER_REPLAY BUS_DIALER_PUB BUS_DIALER_REPLAY
n=0
refused() { # EXPECTED-PREFIX VAR=value...
    local want=$1 rc=0 log
    shift
    n=$((n + 1))
    log="$T/refused$n.log"
    timeout 20 env PORT="$(free_port)" DATA_DIR="$T/r$n" "$@" "$LEADBUS" --target=ingest >"$log" 2>&1 || rc=$?
    [ $rc -eq 2 ] || fail "[$*]: exit $rc, not 2: $(cat "$log")"
    [ "$(grep -c '^leadbus: ' "$log")" -eq 1 ] || fail "[$*]: expected one refusal line: $(cat "$log")"
    grep -q "^leadbus: $want" "$log" || fail "[$*]: expected 'leadbus: $want…': $(cat "$log")"
    echo "refused: $(grep '^leadbus: ' "$log")"
}
ipc=(BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/r.ipc")
refused "BUS_TLS_CERT" "${ipc[@]}" BUS_TLS_CERT= BUS_TLS_KEY="$C/ingest.key"
refused "BUS_TLS_KEY" "${ipc[@]}" BUS_TLS_CERT="$C/ingest.crt" BUS_TLS_KEY=
refused "BUS_TLS_CA" "${ipc[@]}" BUS_TLS_CA= BUS_TLS_CERT="$C/ingest.crt" BUS_TLS_KEY="$C/ingest.key"
refused "BUS_INGEST_PUB: tcp://0.0.0.0:" BUS_TLS_CA= BUS_INGEST_PUB="tcp://0.0.0.0:$(free_port)" BUS_INGEST_REPLAY="ipc://$T/r.ipc"
refused "BUS_DIALER_REPLAY: tcp://10.1.2.3:" BUS_TLS_CA= "${ipc[@]}" BUS_DIALER_REPLAY="tcp://10.1.2.3:7432"
refused "BUS_INGEST_PUB: tls+tcp://" BUS_TLS_CA= BUS_INGEST_PUB="$IPUB" BUS_INGEST_REPLAY="$IREP"
# shellcheck disable=SC2046
refused "BUS_INGEST_NAME: " $(as ingest) BUS_INGEST_PUB="$IPUB,tls+tcp://127.0.0.1:1" BUS_INGEST_REPLAY="$IREP,tls+tcp://127.0.0.1:2"
echo junk >"$T/junk.pem"
refused "BUS_TLS_KEY: " "${ipc[@]}" BUS_TLS_CERT="$C/ingest.crt" BUS_TLS_KEY="$T/junk.pem"
# Controls: plain tcp off loopback with BUS_INSECURE=true, and plain loopback tcp, both start.
for extra in "BUS_INSECURE=true BUS_INGEST_PUB=tcp://0.0.0.0:$(free_port)" "BUS_INGEST_PUB=tcp://127.0.0.1:$(free_port)"; do
    port=$(free_port)
    # shellcheck disable=SC2086
    start ctl env PORT=$port DATA_DIR="$T/ctl$port" BUS_TLS_CA= $extra BUS_INGEST_REPLAY="ipc://$T/c$port.ipc" "$LEADBUS" --target=ingest
    wait_for 20 "ingest starts with $extra" curl -fsS "http://127.0.0.1:$port/healthz"
    kill -TERM "$LAST_PID"
    wait_pid 15 "$LAST_PID" || true
done
echo "ok: BUS_INSECURE=true admits plain tcp off loopback; loopback tcp needs nothing"
echo "bus_tls: all cases passed"
