#!/usr/bin/env bash
# Issue 14, cases 3, 4 and 6 (store): a second process on the same DATA_DIR is refused at
# start, naming the store and the pid that holds it, and the first keeps every lead once;
# a store file deleted under a running process turns it not ready with an ERROR line naming
# the file, and POST /leads answers 503 instead of 202s that would be lost; a corrupt store
# turns /readyz not ready (found at start by the integrity check) and refuses writes.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
export HTTP_BIND=127.0.0.1 API_KEYS=$KEY CALL_HOURS=always EXOTEL_CALL_DELAY_MS=300000

post() { # post URL NAME: prints the HTTP status, the body goes to $T/post
    curl -s -o "$T/post" -w '%{http_code}' -X POST "$1/leads" -H "Content-Type: application/json" \
        -H "X-API-Key: $KEY" -d "{\"name\":\"$2\",\"email\":\"a@example.com\"}"
}
readyz() { curl -s "$1/readyz"; }
not_ready_with() { local r; r=$(readyz "$1"); grep -q '"status":"not ready"' <<<"$r" && grep -q "$2" <<<"$r"; }
metric() { curl -s "$1/metrics" | awk -v m="$2" 'index($0, m) == 1 {print $NF}'; }

# --- case 3: `make run` twice on one DATA_DIR, on different ports
P1=$(free_port); P2=$(free_port)
U1="http://127.0.0.1:$P1"
start first env PORT=$P1 DATA_DIR="$T/data" "$LEADBUS" --target=all
FIRST=$LAST_PID
wait_for 15 "the first process" curl -fsS "$U1/readyz"
[ "$(post "$U1" "Before Second")" = 202 ] || fail "first lead: $(cat "$T/post")"

rc=0
timeout 20 env PORT=$P2 DATA_DIR="$T/data" "$LEADBUS" --target=all >"$T/second.log" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "the second process on the same DATA_DIR exited $rc, not 2: $(cat "$T/second.log")"
line=$(grep '^leadbus: ' "$T/second.log") || fail "no refusal line: $(cat "$T/second.log")"
[ "$(wc -l <<<"$line")" -eq 1 ] || fail "expected one refusal line, got: $line"
grep -q "^leadbus: $T/data/[a-z-]*\.db: in use by another process (pid $FIRST holds " <<<"$line" ||
    fail "the refusal should name the store and pid $FIRST: $line"
echo "second process refused: $line"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/healthz" || true)
[ "$code" = 000 ] || fail "the second process served HTTP ($code)"
# Nothing counted twice: the first process alone has the lead, once.
[ "$(post "$U1" "After Second")" = 202 ] || fail "lead after the refusal: $(cat "$T/post")"
wait_for 10 "stats to count two leads" eval "curl -s '$U1/exotel/stats' | grep -c '\"received\":2,'" >/dev/null

# --- case 4: the store file is deleted while the process runs
readyz "$U1" | grep -c '"status":"ready"' >/dev/null || fail "not ready before the deletion: $(readyz "$U1")"
[ "$(metric "$U1" 'leadbus_store_writable{store="ingest"}')" = 1 ] || fail "store gauge before"
rm "$T/data/ingest.db"
wait_for 5 "/readyz to fail on the deleted store" not_ready_with "$U1" '"store ingest"'
code=$(post "$U1" "Into The Void")
[ "$code" = 503 ] && grep -q '"success":false,"error":{"code":"unavailable"' "$T/post" ||
    fail "POST after the deletion answered $code: $(cat "$T/post")"
grep -q "ERROR.*Store file was deleted or replaced.*$T/data/ingest.db" "$T/first.log" ||
    fail "no ERROR line naming the deleted file"
[ "$(metric "$U1" 'leadbus_store_writable{store="ingest"}')" = 0 ] || fail "store gauge after deletion"
metric "$U1" 'leadbus_check_ok{check="store ingest",kind="ready"}' | grep -cx 0 >/dev/null || fail "check metric"
# Other stores are untouched and still named healthy.
readyz "$U1" | grep -c '"store stats"' >/dev/null && fail "stats store reported although intact"
echo "deleted store: $(readyz "$U1")"
kill -TERM "$FIRST"; wait_pid 10 "$FIRST" || true

# --- case 6, store part: a corrupt store is not ready and refuses writes
P3=$(free_port); U3="http://127.0.0.1:$P3"
command -v sqlite3 >/dev/null || { echo "sqlite3 not found: skipped the corruption case"; exit 0; }
start ingest env PORT=$P3 DATA_DIR="$T/c" BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" \
    "$LEADBUS" --target=ingest
ING=$LAST_PID
wait_for 10 ingest curl -fsS "$U3/readyz"
for i in $(seq 1 40); do [ "$(post "$U3" "Lead $i")" = 202 ] || fail "lead $i"; done
kill -TERM "$ING"; wait_pid 10 "$ING"
root=$(sqlite3 "$T/c/ingest.db" "SELECT rootpage FROM sqlite_master WHERE name='leads'")
psize=$(sqlite3 "$T/c/ingest.db" "PRAGMA page_size")
[ -n "$root" ] && [ -f "$T/c/ingest.db" ] && [ ! -s "$T/c/ingest.db-wal" ] || fail "store not checkpointed"
head -c "$psize" /dev/urandom | dd of="$T/c/ingest.db" bs="$psize" seek=$((root - 1)) conv=notrunc status=none
start ingest env PORT=$P3 DATA_DIR="$T/c" BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" \
    "$LEADBUS" --target=ingest
ING=$LAST_PID
wait_for 10 "ingest after the corruption" curl -fsS "$U3/healthz"
wait_for 10 "/readyz to fail on the corrupt store" not_ready_with "$U3" '"store ingest"'
code=$(post "$U3" "Into Corruption")
[ "$code" = 503 ] || fail "POST to a corrupt store answered $code: $(cat "$T/post")"
grep -q "ERROR.*Store is corrupt.*$T/c/ingest.db" "$T/ingest.log" || fail "no ERROR line naming the corrupt file"
echo "corrupt store: $(readyz "$U3")"
kill -TERM "$ING"; wait_pid 10 "$ING" || true
echo "store_guard: ok"
