#!/usr/bin/env bash
# Issue 14, case 2: two ingest processes with one name (BUS_INGEST_NAME left at
# its default, "ingest"), each with its own store, and subscribers (zoho-sync,
# stats) dialling both over tcp://. Before epochs, a subscriber counted one
# stream: 1 of 2 leads arrived, lag 0, ready. Now the failure is named: an ERROR
# line every heartbeat naming the publisher and both epochs,
# leadbus_bus_stream_conflict 1, /readyz 503 naming the check; the stream
# followed first is applied in order and the other one is refused (no cursor
# flip-flop: nothing of it applied, nothing applied twice). Once an operator
# renames one replica, /readyz is 200 again and every lead of both reaches Zoho
# once.
TOPOLOGY=split
. "$(dirname "$0")/cluster_lib.sh"
SERVICES=(ingest ingest2 zoho-sync stats)
# cluster_lib has exported BUS_INGEST_PUB/REPLAY as both replicas' lists: the subscribers dial both.
up_ingest() { # SERVICE NAME PUB REPLAY
    start "$1" env PORT="${PORT[$1]}" DATA_DIR="$T/$1" BUS_INGEST_NAME="$2" BUS_INGEST_PUB="$3" \
        BUS_INGEST_REPLAY="$4" "$LEADBUS" --target=ingest
    PID[$1]=$LAST_PID
    wait_for 20 "$1 ready" curl -fsS "http://127.0.0.1:${PORT[$1]}/readyz"
}
post() { # SERVICE FROM TO: leads to that replica; ids appended to $T/leads.SERVICE
    for n in $(seq "$2" "$3"); do
        local out
        out=$(curl -s --max-time 5 -X POST "http://127.0.0.1:${PORT[$1]}/leads" \
            -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
            -d "{\"name\":\"Twin $n\",\"email\":\"twin$n@example.com\"}")
        grep -o '"leadId":"ld_[0-9a-f]*"' <<<"$out" | cut -d'"' -f4 >>"$T/leads.$1" ||
            fail "lead $n not accepted by $1: $out"
    done
}
zoho_set() { zoho_ids | cut -d'"' -f4 | sort; }
readyz() { curl -s "http://127.0.0.1:${PORT[$1]}/readyz"; }
refused() { # SERVICE: /readyz 503 naming the check
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$1]}/readyz")" = 503 ] &&
        readyz "$1" | grep -c "\"$1: two live publishers share a bus stream name\"" >/dev/null
}
conflict_metric() { # SERVICE VALUE
    curl -s "http://127.0.0.1:${PORT[$1]}/metrics" |
        grep -c "^leadbus_bus_stream_conflict{subscriber=\"$1\",publisher=\"ingest\"} $2$" >/dev/null
}
errors() { grep -c "\[ERROR\].*Two live publishers share one stream name.*publisher: 'ingest'" "$T/$1.log" || true; }
at_least_errors() { [ "$(errors "$1")" -ge "$2" ]; }

up sandbox
wait_for 20 "sandbox ready" curl -fsS "$SB/readyz"
up_ingest ingest ingest "$I0P" "$I0R"
up_ingest ingest2 ingest "$I1P" "$I1R"
: >"$T/leads.ingest"
: >"$T/leads.ingest2"
post ingest 1 3
post ingest2 4 6
up zoho-sync
up stats
for svc in zoho-sync stats; do
    wait_for 30 "$svc to refuse the second publisher named ingest (/readyz 503 naming it)" refused $svc
    wait_for 10 "$svc's conflict metric" conflict_metric $svc 1
done
# Leads keep coming to both while the subscribers refuse one of them.
post ingest 7 8
post ingest2 9 10
# An ERROR every heartbeat (about one a second), each naming both epochs.
wait_for 20 "an ERROR line per heartbeat" at_least_errors zoho-sync 5
E_A=$(grep "Publishing {" "$T/ingest.log" | grep -o "epoch: '[0-9a-f]*'" | cut -d"'" -f2)
E_B=$(grep "Publishing {" "$T/ingest2.log" | grep -o "epoch: '[0-9a-f]*'" | cut -d"'" -f2)
line=$(grep "Two live publishers share one stream name" "$T/zoho-sync.log" | tail -n 1)
{ grep -q "epoch: '$E_A', otherEpoch: '$E_B'" <<<"$line" || grep -c "epoch: '$E_B', otherEpoch: '$E_A'" <<<"$line" >/dev/null; } ||
    fail "the ERROR does not name both epochs ($E_A, $E_B): $line"
# The followed stream is applied, in full and once; the other not at all (no flip-flop).
A=$(sort "$T/leads.ingest") B=$(sort "$T/leads.ingest2")
followed_only() { [ "$(zoho_set)" = "$A" ] || [ "$(zoho_set)" = "$B" ]; }
wait_for 30 "one replica's 5 leads in Zoho" followed_only
at_least_errors zoho-sync 8 || wait_for 10 "three more heartbeats" at_least_errors zoho-sync 8
followed_only || fail "Zoho holds leads of both publishers named ingest: $(zoho_set | wc -l)"
[ "$(zoho_ids | wc -l)" -eq 5 ] || fail "a lead reached Zoho twice"
echo "two publishers named ingest: refused ($(errors zoho-sync) ERROR lines so far), /readyz: $(readyz zoho-sync)"

# The operator renames the second replica; its store and its events stay.
kill -TERM "${PID[ingest2]}"; wait_pid 15 "${PID[ingest2]}"
up_ingest ingest2 ingest-1 "$I1P" "$I1R"
everything() { [ "$(zoho_set)" = "$(sort "$T/leads.ingest" "$T/leads.ingest2")" ]; }
wait_for 60 "all 10 leads of both replicas in Zoho" everything
[ "$(zoho_ids | wc -l)" -eq 10 ] || fail "a lead reached Zoho twice after the rename"
for svc in zoho-sync stats; do
    wait_for 30 "$svc ready again" curl -fsS "http://127.0.0.1:${PORT[$svc]}/readyz"
    wait_for 10 "$svc's conflict metric back to 0" conflict_metric $svc 0
done
received_all() { curl -s "$S/exotel/stats" | grep -c '"received":10,' >/dev/null; }
wait_for 30 "stats to count each of the 10 leads once" received_all
echo "renamed: all 10 leads in Zoho once, subscribers ready"
for svc in "${SERVICES[@]}"; do kill -TERM "${PID[$svc]}"; wait_pid 15 "${PID[$svc]}"; done
