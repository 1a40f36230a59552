#!/usr/bin/env bash
# The Kubernetes base, run as rendered (issue 17): `kubectl kustomize deploy/k8s/base`, then every
# pod its workloads make is started as a kubelet would, from the rendering alone (k8s_assert.js
# pods): its args, its environment (ConfigMaps, the Downward API's pod name), a Secret with
# API_KEYS, its readiness probe polled before it counts as up, and its preStop command run before
# SIGTERM. podman 4.3's `kube play` cannot do this (no StatefulSet; its pods need a pause image
# and a bridge network on a private range), so the pods are real leadbus processes in a network
# and mount namespace the test makes: each pod its own loopback address (its pod IP: "0.0.0.0"
# in the rendering is that address), each Service a DNS name answered by dnsmasq (ClusterIP
# Services: their pods' addresses; the headless one: one record per ingest pod), DATA_DIR its own
# directory (its PersistentVolume). A lead posted to ingest is synced to Zoho and called (sandbox);
# then `kubectl scale sts/leadbus-ingest --replicas=3`: the new pod is found through DNS by every
# subscriber without a restart and its lead goes the same way; then scaled back to 2 (preStop,
# SIGTERM): nothing lost. Test-only settings on top of the rendering: CALL_HOURS=always and short
# sandbox timings. Skipped (exit 77) without kubectl or dnsmasq.
if [ -z "${LEADBUS_TEST_NETNS:-}" ]; then
    command -v kubectl >/dev/null || { echo "SKIP: kubectl is not installed"; exit 77; }
    command -v dnsmasq >/dev/null || { echo "SKIP: dnsmasq is not installed"; exit 77; }
    ns=(--net --mount)
    [ "$(id -u)" -eq 0 ] || ns=(-r "${ns[@]}")
    exec env LEADBUS_TEST_NETNS=1 timeout -k 5 280 unshare "${ns[@]}" bash "$0" "$@"
fi
unset LEADBUS_TEST_NETNS
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ip link set lo up
mount --make-rprivate / 2>/dev/null || true
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:2\n' >"$T/resolv.conf"
mount --bind "$T/resolv.conf" /etc/resolv.conf
KEY=test-key-0123456789abcdef

kubectl kustomize "$ROOT/deploy/k8s/base" >"$T/base.yaml" || fail "kustomize base"
(cd "$T" && timeout 120 npm install --silent --no-audit --no-fund yaml@2 >"$T/npm.log" 2>&1) ||
    fail "npm install: $(tail -5 "$T/npm.log")"
mkdir -p "$T/pods"
NODE_PATH="$T/node_modules" node "$(dirname "$0")/k8s_assert.js" pods "$T/base.yaml" "$T/pods" >"$T/pods.txt" ||
    fail "k8s_assert.js pods"

declare -A ADDR COMP PORTOF READY PRESTOP PIDOF
N=10
while read -r kind a b c d e f; do
    case $kind in
    pod) ADDR[$a]=127.0.0.$N; COMP[$a]=$b; PORTOF[$a]=$c; READY[$a]=$d; N=$((N + 1)) ;;
    prestop) PRESTOP[$a]="$b $c $d $e $f" ;;
    esac
done <"$T/pods.txt"
PODS=$(awk '$1 == "pod" {print $2}' "$T/pods.txt")
args_of() { awk -v p="$1" '$1 == "pod" && $2 == p {for (i = 7; i <= NF; i++) printf "%s ", $i}' "$T/pods.txt"; }

# DNS: every Service name -> the addresses of the pods it selects (running ones)
hosts() {
    local kind svc comp q
    : >"$T/hosts.new"
    while read -r kind svc comp; do
        [ "$kind" = svc ] || continue
        for q in "${!COMP[@]}"; do
            [ "${COMP[$q]}" = "$comp" ] && [ -n "${PIDOF[$q]:-}" ] && echo "${ADDR[$q]} $svc" >>"$T/hosts.new"
        done
    done <"$T/pods.txt"
    mv "$T/hosts.new" "$T/hosts"
    [ -z "${DNS:-}" ] || kill -HUP "$DNS"
}
: >"$T/hosts"
start dnsmasq dnsmasq --keep-in-foreground --no-resolv --no-hosts --local=// --addn-hosts="$T/hosts" \
    --listen-address=127.0.0.1 --bind-interfaces --port=53 --user=root --local-ttl=0 --log-facility=-
DNS=$LAST_PID

# run POD: start it as its kubelet would (the rendered env, the pod's address for 0.0.0.0)
run() {
    local p=$1 env=()
    mkdir -p "$T/vol/$p"
    while IFS= read -r line; do
        line=${line//0.0.0.0/${ADDR[$p]}}
        [ "$line" = "DATA_DIR=/data" ] && line="DATA_DIR=$T/vol/$p"
        env+=("$line")
    done <"$T/pods/$p.env"
    start "$p" env -i PATH="$PATH" "${env[@]}" API_KEYS=$KEY CALL_HOURS=always EXOTEL_CALL_DELAY_MS=300 \
        SANDBOX_RING_MS=200 SANDBOX_OUTCOME_MODE=last-digit "$LEADBUS" $(args_of "$p")
    PIDOF[$p]=$LAST_PID
}
ready() { curl -fsS "http://${ADDR[$1]}:${PORTOF[$1]}${READY[$1]}"; }
for p in $PODS; do run "$p"; done
hosts
for p in $PODS; do wait_for 60 "$p ready (its readinessProbe)" ready "$p"; done
echo "rendered base running: $(echo $PODS | wc -w) pods"

ST="http://${ADDR[leadbus-stats-0]}:3000"
post() { # POD PHONE
    curl -s -X POST "http://${ADDR[$1]}:${PORTOF[$1]}/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
        -d "{\"name\":\"Pod $1\",\"phone\":\"$2\"}" | grep -c '"success":true' >/dev/null || fail "post to $1"
}
# N leads received by stats (lead.created from ingest), their calls placed and leads synced
done_n() { curl -s "$ST/exotel/stats" | grep -c "\"success\":$1,.*\"received\":$1,\"synced\":$1" >/dev/null; }
post leadbus-ingest-0 9876543210
post leadbus-ingest-1 9876543220
wait_for 60 "both leads called and synced (stats)" done_n 2

echo "== kubectl scale sts/leadbus-ingest --replicas=3"
p=leadbus-ingest-2
ADDR[$p]=127.0.0.$N; COMP[$p]=ingest; PORTOF[$p]=3000; READY[$p]=/readyz; PRESTOP[$p]=${PRESTOP[leadbus-ingest-1]}
sed 's/^BUS_INGEST_NAME=.*/BUS_INGEST_NAME=leadbus-ingest-2/' "$T/pods/leadbus-ingest-1.env" >"$T/pods/$p.env"
awk '$1 == "pod" && $2 == "leadbus-ingest-1" {$2 = "leadbus-ingest-2"; print}' "$T/pods.txt" >>"$T/pods.txt"
run "$p"
wait_for 30 "$p ready" ready "$p"
hosts
post "$p" 9876543230
wait_for 60 "the new replica's lead called and synced, no restart" done_n 3
for s in leadbus-zoho-sync-0 leadbus-call-scheduler-0 leadbus-stats-0; do
    wait_for 15 "$s to find $p" grep -q "Bus publisher found by DNS.*${ADDR[$p]}" "$T/$s.log"
done

echo "== kubectl scale sts/leadbus-ingest --replicas=2 (leaves DNS, preStop pause, SIGTERM)"
pid=${PIDOF[$p]}
unset "PIDOF[$p]"
hosts
post "$p" 9876543240 # endpoints lag: the terminating pod still takes a request during preStop
pre=${PRESTOP[$p]}
env -i PATH="$PATH" "$LEADBUS" ${pre#leadbus } || fail "preStop of $p: $pre"
kill -TERM "$pid"
wait_pid 20 "$pid" || fail "$p did not stop cleanly on SIGTERM"
wait_for 60 "all 4 leads called and synced" done_n 4
for s in leadbus-zoho-sync-0 leadbus-call-scheduler-0 leadbus-stats-0; do
    wait_for 20 "$s to drop $p once stopped and drained" \
        grep -q "stopped after it was drained.*${ADDR[$p]}" "$T/$s.log"
done
zoho=$(curl -s "http://${ADDR[leadbus-sandbox-0]}:3000/sandbox/zoho/records?module=Leads" | grep -o '"Leadbus_Id"' | wc -l)
[ "$zoho" -eq 4 ] || fail "Zoho (sandbox) holds $zoho leads, expected 4"
echo "the rendered base ran: 4 leads through 3 ingest replicas (one added and removed live), each called and synced once"
