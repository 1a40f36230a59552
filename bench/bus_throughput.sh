#!/usr/bin/env bash
# Bus throughput: events/s from a publisher's commit to a subscriber's durable
# apply, over ipc:// and tcp://, with fsync on at both ends (synchronous=FULL).
# The subscriber is attached first; the publisher then commits N events in
# transactions of B; the figure is N over the subscriber's first-to-last apply.
# Usage: bench/bus_throughput.sh [N] [RUNS]   (needs a build in ./build)
# TRANSPORTS="ipc tcp tls" (default "ipc tcp"): tls is tls+tcp://127.0.0.1 with mutual
# authentication, certificates from deploy/bus-certs.sh in the temp dir.
set -euo pipefail
N=${1:-50000}
RUNS=${2:-5}
TRANSPORTS=${TRANSPORTS:-ipc tcp}
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
PEER=$BUILD/bus_peer
T=$(mktemp -d /tmp/leadbus-bench.XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT # set -e: a failing kill skipped the rm
if [[ " $TRANSPORTS " == *" tls "* ]]; then
    "$(dirname "$0")/../deploy/bus-certs.sh" "$T/certs" >/dev/null
fi
tls_env() { # ROLE: BUS_TLS_* for a peer (the bench publisher presents `ingest`, the subscriber `stats`)
    echo BUS_TLS_CA="$T/certs/ca.crt" BUS_TLS_CERT="$T/certs/$1.crt" BUS_TLS_KEY="$T/certs/$1.key"
}

run() { # transport batch
    local tr=$1 batch=$2 pub rep
    local scheme=tcp penv=() senv=()
    rm -f "$T"/*.db* "$T"/go "$T"/*.log
    if [ "$tr" = tls ]; then
        scheme=tls+tcp
        read -ra penv <<<"$(tls_env ingest)"
        read -ra senv <<<"$(tls_env stats)"
    fi
    if [ "$tr" = ipc ]; then pub="ipc://$T/p.ipc"; rep="ipc://$T/r.ipc"
    else pub="$scheme://127.0.0.1:$((30000 + RANDOM % 5000))"; rep="$scheme://127.0.0.1:$((35000 + RANDOM % 5000))"; fi
    env "${senv[@]}" "$PEER" sub --name bench --db "$T/sub.db" --source "$pub,$rep" --expect "$N" --timeout 300 >"$T/sub.log" 2>&1 &
    local sub=$!
    env "${penv[@]}" "$PEER" pub --name bench --db "$T/pub.db" --pub "$pub" --replay "$rep" --topics call.due \
        --count "$N" --batch "$batch" --start-file "$T/go" >"$T/pub.log" 2>&1 &
    local p=$!
    until grep -q ready "$T/sub.log"; do sleep 0.02; done
    touch "$T/go"
    wait "$sub"
    kill "$p"; wait "$p" 2>/dev/null || true
    grep -o '([0-9]* events/s)' "$T/sub.log" | tr -dc '0-9'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

echo "bus throughput, $N events per run, median of $RUNS runs, fsync on both ends"
printf '%-6s %-18s %s\n' transport "events per commit" "events/s (median)"
for tr in $TRANSPORTS; do
    for batch in 1 100; do
        r=$(for i in $(seq "$RUNS"); do run "$tr" "$batch"; echo; done | median)
        printf '%-6s %-18s %s\n' "$tr" "$batch" "$r"
    done
done
