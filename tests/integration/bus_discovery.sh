#!/usr/bin/env bash
# Ingest replicas found by DNS (BUS_INGEST_DISCOVER), with a real DNS server: dnsmasq answers
# several A records for one name (one per replica, each bound to its own loopback address), and
# replicas are added and removed by rewriting its hosts file (SIGHUP) while leads flow. stats
# subscribes by discovery alone and must count every lead accepted exactly once:
#  1. two replicas found at start; a third added without restarting stats;
#  2. a replica scaled down gracefully: it leaves DNS first, still takes leads for a moment (a
#     terminating pod's preStop pause) which the subscriber still applies, then stops and is
#     dropped;
#  3. a replica scaled down while stats was down, with leads stats had not applied: they wait
#     in its store; "scaled up again" at another address (a new pod IP, same name and volume),
#     it is found and drained: nothing lost, none twice (leadbus_bus_events_applied_total).
# DISCOVERY_TLS=1 (ctest bus_discovery_tls) runs it all over tls+tcp://: the replicas share one
# certificate for the discovery name, as production's cert-manager Certificate does.
# The test runs in a network and mount namespace of its own: its resolv.conf (bind-mounted)
# points the system resolver at dnsmasq on 127.0.0.1:53 there; the machine's is untouched.
if [ -z "${LEADBUS_TEST_NETNS:-}" ]; then
    command -v dnsmasq >/dev/null || { echo "dnsmasq not installed (deploy/install-deps.sh --test)"; exit 1; }
    ns=(--net --mount)
    [ "$(id -u)" -eq 0 ] || ns=(-r "${ns[@]}")
    exec env LEADBUS_TEST_NETNS=1 timeout -k 5 240 unshare "${ns[@]}" bash "$0" "$@"
fi
unset LEADBUS_TEST_NETNS
. "$(dirname "$0")/lib.sh"
ip link set lo up
mount --make-rprivate / 2>/dev/null || true
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:2\n' >"$T/resolv.conf"
mount --bind "$T/resolv.conf" /etc/resolv.conf
NAME=ingest.bus.test
HOSTS="$T/hosts"
KEY=test-key-0123456789abcdef

# hosts ADDR...: the addresses dnsmasq answers for $NAME from now on.
hosts() {
    : >"$HOSTS.new"
    for a in "$@"; do echo "$a $NAME" >>"$HOSTS.new"; done
    mv "$HOSTS.new" "$HOSTS"
    kill -HUP "$DNS"
}
: >"$HOSTS"
start dnsmasq dnsmasq --keep-in-foreground --no-resolv --no-hosts --local=/bus.test/ --addn-hosts="$HOSTS" \
    --listen-address=127.0.0.1 --bind-interfaces --port=53 --user=root --local-ttl=0 \
    --pid-file="$T/dnsmasq.pid" --log-facility=- --log-queries
DNS=$LAST_PID
answers() { getent ahosts "$NAME" | awk '$2 == "STREAM" {print $1}' | sort | tr '\n' ' '; }
wait_for 10 "dnsmasq" getent hosts localhost
# no record yet: the resolver answers "no such name", which is not a resolver failure

SCHEME=tcp
TLS_INGEST=() TLS_STATS=()
if [ "${DISCOVERY_TLS:-}" = 1 ]; then
    SCHEME=tls+tcp
    "$(dirname "$0")/../../deploy/bus-certs.sh" "$T/certs" "$NAME" >/dev/null
    TLS_INGEST=(BUS_TLS_CA="$T/certs/ca.crt" BUS_TLS_CERT="$T/certs/$NAME.crt" BUS_TLS_KEY="$T/certs/$NAME.key")
    TLS_STATS=(BUS_TLS_CA="$T/certs/ca.crt" BUS_TLS_CERT="$T/certs/stats.crt" BUS_TLS_KEY="$T/certs/stats.key")
fi
declare -A HPORT
# replica N ADDR: ingest-N publishing on ADDR (its pod IP), its store in $T/ingest-N
replica() {
    local n=$1 addr=$2
    HPORT[$n]=${HPORT[$n]:-$(free_port)}
    start "ingest-$n" env PORT=${HPORT[$n]} HTTP_BIND=127.0.0.1 DATA_DIR="$T/ingest-$n" \
        API_KEYS=$KEY BUS_INGEST_NAME="ingest-$n" BUS_INGEST_PUB="$SCHEME://$addr:7401" \
        BUS_INGEST_REPLAY="$SCHEME://$addr:7402" "${TLS_INGEST[@]}" "$LEADBUS" --target=ingest
    eval "PID_$n=$LAST_PID"
    wait_for 15 "ingest-$n" curl -fsS "http://127.0.0.1:${HPORT[$n]}/readyz"
}
SP=$(free_port)
start_stats() {
    start stats env PORT=$SP HTTP_BIND=127.0.0.1 DATA_DIR="$T/stats" API_KEYS=$KEY \
        BUS_INGEST_DISCOVER="dns:$NAME:7401" BUS_DISCOVER_INTERVAL_MS=200 "${TLS_STATS[@]}" \
        "$LEADBUS" --target=stats
    STATS=$LAST_PID
}
# found N: stats' last resolution found N addresses
found() { [ "$(metric 'leadbus_bus_discovered_publishers{subscriber="stats",name="'$NAME'"}')" = "$1" ]; }
metric() { # metric NAME-AND-LABELS: its value in stats' /metrics (0 when absent)
    curl -fsS "http://127.0.0.1:$SP/metrics" | awk -v m="$1" 'index($0, m) == 1 {v = $2} END {print v + 0}'
}
received() { curl -fsS "http://127.0.0.1:$SP/exotel/stats" | grep -o '"received":[0-9]*' | cut -d: -f2; }

POSTED=0
# post N REPLICA...: N leads, round robin over the replicas; each 202 counts
post() {
    local n=$1; shift
    for i in $(seq 1 "$n"); do
        local args=("$@")
        local r=${args[$((i % $#))]}
        local code
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:${HPORT[$r]}/leads" \
            -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
            -d "{\"name\":\"Lead $POSTED\",\"email\":\"l$POSTED-$r@example.com\"}")
        [ "$code" = 202 ] || fail "lead to ingest-$r: HTTP $code"
        POSTED=$((POSTED + 1))
    done
}
all_applied() { [ "$(received)" = "$POSTED" ]; }

echo "== 1. two replicas, then a third while leads flow"
replica 0 127.0.0.2
replica 1 127.0.0.3
hosts 127.0.0.2 127.0.0.3
answers_are() { [ "$(answers)" = "$*" ]; }
wait_for 10 "two A records" answers_are "127.0.0.2 127.0.0.3 "
start_stats
wait_for 20 "stats ready with both replicas found" curl -fsS "http://127.0.0.1:$SP/readyz"
post 20 0 1
replica 2 127.0.0.4
hosts 127.0.0.2 127.0.0.3 127.0.0.4
post 20 0 1 2
wait_for 10 "three publishers discovered" found 3
post 10 2
wait_for 30 "stats to apply $POSTED leads" all_applied
grep -q "Bus publisher found by DNS.*$SCHEME://127.0.0.4" "$T/stats.log" || fail "no log line for the third replica"

echo "== 2. ingest-1 scaled down: leaves DNS, takes a last few leads, drained, stopped"
hosts 127.0.0.2 127.0.0.4
wait_for 10 "ingest-1 retiring" grep -q 'left the DNS answer.*127.0.0.3' "$T/stats.log"
post 10 1 0 2 # the terminating pod still answers while its endpoints drain (preStop)
sleep 1.5     # drain checks (1 s apart) pass while it is up: it must stay followed after them
post 3 1
wait_for 30 "stats to apply $POSTED leads (the preStop pause)" all_applied
kill -TERM "$PID_1"; wait_pid 15 "$PID_1" || true
wait_for 20 "ingest-1 dropped once stopped" grep -q 'stopped after it was drained.*127.0.0.3' "$T/stats.log"
post 10 0 2
wait_for 30 "stats to apply $POSTED leads" all_applied
APPLIED='leadbus_bus_events_applied_total{subscriber="stats",topic="lead.created"}'
[ "$(metric "$APPLIED")" = "$POSTED" ] || fail "stats applied $(metric "$APPLIED") lead.created events for $POSTED leads"
P2=$POSTED

echo "== 3. ingest-2 scaled down while stats is down: its leads wait in its store until it is back"
kill -9 "$STATS"; wait "$STATS" 2>/dev/null || true
post 12 0 2
hosts 127.0.0.2
kill -TERM "$PID_2"; wait_pid 15 "$PID_2" || true
start_stats
wait_for 20 "stats up" curl -fsS "http://127.0.0.1:$SP/metrics"
wait_for 10 "one publisher discovered" found 1
behind=$((POSTED - $(received)))
echo "stats lacks $behind leads while ingest-2 is away"
[ "$behind" -gt 0 ] || fail "expected leads of ingest-2 to wait for it"
replica 2 127.0.0.5 # same name and store, a new address
hosts 127.0.0.2 127.0.0.5
wait_for 30 "stats to apply all $POSTED leads after ingest-2 came back" all_applied

echo "== 4. a name with no address: WARN, metric, degraded"
hosts
wait_for 10 "no publisher discovered" found 0
wait_for 10 "a WARN" grep -q 'name has no address' "$T/stats.log"
[ "$(metric 'leadbus_bus_discover_failures_total{subscriber="stats",name="'$NAME'"}')" -gt 0 ] ||
    fail "leadbus_bus_discover_failures_total not counted"
names_degraded() { curl -s "http://127.0.0.1:$SP/readyz" | grep -c 'ingest streams' >/dev/null; }
wait_for 10 "/readyz to name the degraded check" names_degraded

# Exactly once on the bus too (stats would hide a duplicate lead): this run of stats applied
# the events its first run had not.
echo "posted $POSTED, stats received $(received), applied $P2 + $(metric "$APPLIED")"
[ "$(received)" = "$POSTED" ] || fail "stats received $(received) of $POSTED"
[ "$(metric "$APPLIED")" = $((POSTED - P2)) ] || fail "stats applied $(metric "$APPLIED") events, expected $((POSTED - P2))"
echo "PASS bus_discovery"
