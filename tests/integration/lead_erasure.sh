#!/usr/bin/env bash
# Issue 19, erasure on request: DELETE /leads/{id} (operator key) scrubs the lead's name, phone,
# email and notes from every store and from the events kept for replay; its pending call is
# canceled; GET /leads/{id} then says only that it was erased and GET /leads leaves it out; a
# subscriber replaying ingest's and call-scheduler's streams from the start (leadbus tap) finds
# none of the erased values; a stats store rebuilt from the bus afterwards agrees.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
P=$(free_port)
URL="http://127.0.0.1:$P"
# Calls wait 10 minutes: both leads' calls are still pending when one is erased.
export PORT=$P HTTP_BIND=127.0.0.1 API_KEYS=$KEY DATA_DIR="$T/d" CALL_HOURS=always \
    EXOTEL_CALL_DELAY_MS=600000 \
    BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" \
    BUS_ZOHO_SYNC_PUB="ipc://$T/z.ipc" BUS_ZOHO_SYNC_REPLAY="ipc://$T/zr.ipc" \
    BUS_CALL_SCHEDULER_PUB="ipc://$T/s.ipc" BUS_CALL_SCHEDULER_REPLAY="ipc://$T/sr.ipc" \
    BUS_DIALER_PUB="ipc://$T/x.ipc" BUS_DIALER_REPLAY="ipc://$T/xr.ipc"
start_all() {
    start all "$LEADBUS" --target=all
    ALL=$LAST_PID
    wait_for 20 "leadbus --target=all" curl -fsS "$URL/readyz"
}
stop_all() { kill -TERM "$ALL"; wait_pid 20 "$ALL"; }
api() { curl -s -H "X-API-Key: $KEY" "$@"; }
post() {
    api -X POST "$URL/leads" -H "Content-Type: application/json" -d "$1" | grep -o 'ld_[0-9a-f]*' ||
        fail "post $1"
}
stats() { curl -s "$URL/exotel/stats"; }
# The erased person's values: none may be found anywhere afterwards.
SECRETS=(Erasmus Secretperson erase-me@example.com 9330000017 330000017 "my secret note")
no_secret() { # FILE
    for v in "${SECRETS[@]}"; do
        if grep -q -- "$v" "$1"; then fail "'$v' found in $1: $(grep -- "$v" "$1" | head -2)"; fi
    done
}

start_all
A=$(post '{"name":"Erasmus Secretperson","phone":"9330000017","email":"erase-me@example.com","notes":"my secret note"}')
C=$(post '{"name":"Keep Me","phone":"9330000020","email":"keep@example.com"}')
wait_for 30 "both leads synced, both calls pending" \
    bash -c "curl -s '$URL/exotel/stats' | grep -c '\"pending\":2,\"total\":2,.*\"synced\":2,'" >/dev/null
api "$URL/leads/$A" | grep -c Secretperson >/dev/null || fail "the timeline should show the lead before erasure"

# --- refused without the operator key; unknown id 404
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/leads/$A")
[ "$code" = 401 ] || fail "DELETE without a key: $code"
code=$(api -o /dev/null -w '%{http_code}' -X DELETE "$URL/leads/ld_0000000000000000000")
[ "$code" = 404 ] || fail "DELETE of an unknown lead: $code"

# --- erase A: the answer says what was erased where
ans=$(api -X DELETE "$URL/leads/$A")
echo "DELETE /leads/$A: $ans"
for want in '"erased":true' '"alreadyErased":false' '"ingest":{"fields":["first_name","last_name","email","phone","notes","extra","origin"],"keptEventsRewritten":1}' \
    'lead.erased published'; do
    grep -qF "$want" <<<"$ans" || fail "the answer lacks $want"
done
again=$(api -X DELETE "$URL/leads/$A")
grep -q '"alreadyErased":true' <<<"$again" || fail "a repeated DELETE: $again"

# --- every service applies it: the pending call canceled, stats shows only that it was erased
wait_for 20 "A's call canceled" bash -c "curl -s -H 'X-API-Key: $KEY' '$URL/calls?state=done' | grep -c 'call_$A'" >/dev/null
api "$URL/calls?state=done" | grep -o "{[^{}]*call_$A[^{}]*}" | grep -c canceled >/dev/null || fail "A's call is not canceled"
api "$URL/calls?state=pending" | grep -c "call_$C" >/dev/null || fail "C's call should still be pending"
wait_for 20 "GET /leads/A to say erased" bash -c "curl -s -H 'X-API-Key: $KEY' '$URL/leads/$A' | grep -c '\"erased\":true'" >/dev/null
got=$(api "$URL/leads/$A")
echo "GET /leads/$A: $got"
[ "$(jq -r 'keys | join(",")' <<<"$got")" = "erased,erasedAt,leadId,success" ] || fail "GET /leads/A shows more than the erasure: $got"
api "$URL/leads?limit=50" >"$T/list.json"
grep -q "$A" "$T/list.json" && fail "GET /leads still lists the erased lead"
grep -q "$C" "$T/list.json" || fail "GET /leads lost the other lead"
no_secret "$T/list.json"
wait_for 10 "stats to count 1 canceled" bash -c "curl -s '$URL/exotel/stats' | grep -c '\"pending\":1,\"total\":2,'" >/dev/null

api "$URL/leads/$C" | grep -c "Keep Me" >/dev/null || fail "the other lead's timeline changed"

# --- erasure by phone or email finds every lead of that person (and only theirs)
P1=$(post '{"name":"Twice Person","phone":"+91 93300 00051","email":"twice@example.com"}')
P2=$(post '{"name":"Twice Again","phone":"09330000051"}')
P3=$(post '{"name":"Mail Only","email":"Mail.Only@Example.com"}')
code=$(api -o /dev/null -w '%{http_code}' -X DELETE "$URL/leads")
[ "$code" = 400 ] || fail "DELETE /leads without phone or email: $code"
code=$(api -o /dev/null -w '%{http_code}' -X DELETE "$URL/leads?phone=12&email=a@b.c")
[ "$code" = 400 ] || fail "DELETE /leads with both: $code"
byphone=$(api -X DELETE "$URL/leads?phone=9330000051")
echo "DELETE /leads?phone=…: $byphone"
[ "$(jq -r '.leadIds | sort | join(",")' <<<"$byphone")" = "$(printf '%s\n' "$P1" "$P2" | sort | paste -sd,)" ] ||
    fail "erasure by phone should find $P1 and $P2: $byphone"
byemail=$(api -X DELETE "$URL/leads?email=mail.only%40example.com")
[ "$(jq -r '.leadIds | join(",")' <<<"$byemail")" = "$P3" ] || fail "erasure by email: $byemail"
[ "$(api -X DELETE "$URL/leads?phone=9330000051" | jq -r '.leadIds | length')" = 0 ] ||
    fail "a second erasure by phone should find nothing left"
for id in "$P1" "$P2" "$P3"; do
    wait_for 20 "GET /leads/$id to say erased" bash -c "curl -s -H 'X-API-Key: $KEY' '$URL/leads/$id' | grep -c '\"erased\":true'" >/dev/null
done
SECRETS+=("Twice Person" "Twice Again" twice@example.com 9330000051 330000051 "Mail Only" mail.only@example.com)

# --- a subscriber replaying from the start finds no erased value (and the lead marked erased)
"$LEADBUS" tap --from=start --count=9 ingest >"$T/tap_ingest.jsonl" 2>"$T/tap.log" &
TAP=$!; PIDS+=("$TAP"); wait_pid 20 "$TAP" || fail "tap ingest: $(cat "$T/tap.log")"
"$LEADBUS" tap --from=start --count=7 call-scheduler >"$T/tap_sched.jsonl" 2>>"$T/tap.log" &
TAP=$!; PIDS+=("$TAP"); wait_pid 20 "$TAP" || fail "tap call-scheduler: $(cat "$T/tap.log")"
cat "$T/tap_ingest.jsonl" "$T/tap_sched.jsonl"
no_secret "$T/tap_ingest.jsonl"
no_secret "$T/tap_sched.jsonl"
grep "\"lead.created\"" "$T/tap_ingest.jsonl" | grep "$A" | grep -c '"erased_ms":[1-9]' >/dev/null ||
    fail "A's replayed lead.created is not marked erased"
grep -q "\"lead.erased\".*$A" "$T/tap_ingest.jsonl" || fail "no lead.erased replayed"
grep "\"lead.created\"" "$T/tap_ingest.jsonl" | grep "$C" | grep -c '"first_name":"Keep","last_name":"Me"' >/dev/null || fail "C's event changed"

# --- the stores: A's personal fields gone, ids and outcomes kept
stop_all
sqlite3 "$T/d/ingest.db" "SELECT * FROM leads WHERE id = '$A'" >"$T/rows"
sqlite3 "$T/d/call-scheduler.db" "SELECT * FROM calls WHERE lead_id = '$A'" >>"$T/rows"
sqlite3 "$T/d/zoho-sync.db" "SELECT * FROM zoho_leads WHERE lead_id = '$A'" >>"$T/rows"
sqlite3 "$T/d/stats.db" "SELECT * FROM st_leads WHERE lead_id = '$A'; SELECT * FROM st_timeline WHERE lead_id = '$A'" >>"$T/rows"
for db in ingest call-scheduler zoho-sync; do
    sqlite3 "$T/d/$db.db" "SELECT hex(frame) FROM bus_outbox" | xxd -r -p >>"$T/outboxes"
done
cat "$T/rows"
no_secret "$T/rows"
# ... nor in the files' free space (secure_delete): the raw bytes of every store, closed cleanly
for db in ingest call-scheduler zoho-sync stats; do
    [ ! -e "$T/d/$db.db-wal" ] || [ ! -s "$T/d/$db.db-wal" ] || fail "$db.db-wal not checkpointed at stop"
    tr -c '[:print:]' '\n' <"$T/d/$db.db" >"$T/raw_$db"
    no_secret "$T/raw_$db"
done
no_secret "$T/outboxes"
[ "$(grep -c "$A" "$T/rows")" -ge 4 ] || fail "A's rows (ids) should stay"
[ "$(sqlite3 "$T/d/stats.db" "SELECT count(*) FROM st_timeline WHERE lead_id = '$A'")" -eq 0 ] ||
    fail "A's timeline should be gone"

# --- stats rebuilt from the bus (a late subscriber replaying everything) agrees
rm -f "$T/d/stats.db" "$T/d/stats.db-wal" "$T/d/stats.db-shm"
start_all
wait_for 30 "a new stats store to replay" bash -c "curl -s '$URL/exotel/stats' | grep -c '\"pending\":1,\"total\":5,'" >/dev/null
api "$URL/leads/$A" | grep -c '"erased":true' >/dev/null || fail "rebuilt stats: A not erased"
api "$URL/leads?limit=50" >"$T/list2.json"
no_secret "$T/list2.json"
stop_all
sqlite3 "$T/d/stats.db" "SELECT * FROM st_leads; SELECT data FROM st_timeline" >"$T/stats2"
no_secret "$T/stats2"
echo "PASS"
