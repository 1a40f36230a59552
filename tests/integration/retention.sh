#!/usr/bin/env bash
# Issue 19, retention: leads older than LEAD_RETENTION_DAYS lose their personal fields in every
# store that has a rule (ingest, zoho-sync, call-scheduler, stats), stats timelines and per-minute
# rows older than STATS_RETENTION_DAYS are dropped, newer leads are untouched and every count
# stays right; each store's pruning is counted in leadbus_retention_rows_total{store,rule}.
# The clock moved forward: with leadbus stopped, two finished leads' timestamps are moved 100
# days back in every store (what a clock 100 days later would see), then it starts again.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
P=$(free_port)
URL="http://127.0.0.1:$P"
export PORT=$P HTTP_BIND=127.0.0.1 API_KEYS=$KEY DATA_DIR="$T/d" CALL_HOURS=always \
    EXOTEL_CALL_DELAY_MS=100 EXOTEL_MAX_RETRIES=1 SANDBOX_RING_MS=100 SANDBOX_OUTCOME_MODE=last-digit
start_all() {
    start all env "$@" "$LEADBUS" --target=all
    ALL=$LAST_PID
    wait_for 20 "leadbus --target=all" curl -fsS "$URL/readyz"
}
stop_all() { kill -TERM "$ALL"; wait_pid 20 "$ALL"; }
post() {
    curl -s -X POST "$URL/leads" -H "X-API-Key: $KEY" -H "Content-Type: application/json" -d "$1" |
        grep -o 'ld_[0-9a-f]*' || fail "post $1"
}
settled() { curl -s "$URL/exotel/stats" | grep -c '"pending":0,"total":3,.*"synced":3,' >/dev/null; }

start_all
O1=$(post '{"name":"Old One","phone":"9340000010","email":"old1@example.com","notes":"old note"}')
O2=$(post '{"name":"Old Two","phone":"9340000020","email":"old2@example.com"}')
N1=$(post '{"name":"New One","phone":"9340000030","email":"new1@example.com"}')
wait_for 60 "3 leads synced and called" settled
curl -s "$URL/exotel/stats" >"$T/stats_before"
stop_all

# --- the clock moves 100 days forward for the two old leads
D=$((100 * 86400000))
IN="('$O1','$O2')"
sqlite3 "$T/d/ingest.db" "UPDATE leads SET received_ms = received_ms - $D WHERE id IN $IN"
sqlite3 "$T/d/call-scheduler.db" "UPDATE calls SET updated_ms = updated_ms - $D WHERE lead_id IN $IN"
sqlite3 "$T/d/zoho-sync.db" "UPDATE zoho_leads SET updated_ms = updated_ms - $D WHERE lead_id IN $IN"
sqlite3 "$T/d/stats.db" "UPDATE st_leads SET received_ms = received_ms - $D WHERE lead_id IN $IN;
    UPDATE st_timeline SET ts = ts - $D WHERE lead_id IN $IN;
    UPDATE st_minutes SET minute = minute - $D"
minutes=$(sqlite3 "$T/d/stats.db" "SELECT count(*) FROM st_minutes")
[ "$minutes" -gt 0 ] || fail "no per-minute rows to age"

# --- a bad value stops start-up naming the variable
rc=0
timeout 20 env LEAD_RETENTION_DAYS=-1 "$LEADBUS" --target=all >"$T/bad.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "LEAD_RETENTION_DAYS=-1 was accepted"
grep -q "LEAD_RETENTION_DAYS" "$T/bad.log" || fail "the refusal does not name LEAD_RETENTION_DAYS: $(cat "$T/bad.log")"

# --- start: each store prunes in the background, counted in /metrics
start_all LEAD_RETENTION_DAYS=90 STATS_RETENTION_DAYS=30
metric() { curl -s "$URL/metrics" | grep -F "leadbus_retention_rows_total{store=\"$1\",rule=\"$2\"}" | awk '{print $NF}'; }
pruned() { [ "$(metric "$1" "$2")" = "$3" ]; }
wait_for 20 "ingest to scrub 2 leads" pruned ingest leads 2
wait_for 20 "call-scheduler to scrub 2 calls" pruned call-scheduler calls 2
wait_for 20 "zoho-sync to scrub 2 leads" pruned zoho-sync leads 2
wait_for 20 "stats to scrub 2 names" pruned stats names 2
wait_for 20 "stats to drop per-minute rows" pruned stats minutes "$minutes"
curl -s "$URL/metrics" | grep '^leadbus_retention_rows_total'
settled || fail "counts changed: $(curl -s "$URL/exotel/stats")"
curl -s "$URL/exotel/stats" | grep -o '"outcomes":{[^}]*}' >"$T/o_after"
grep -o '"outcomes":{[^}]*}' "$T/stats_before" | diff - "$T/o_after" || fail "outcome counts changed"
curl -s -H "X-API-Key: $KEY" "$URL/leads/$N1" | grep -c "New One" >/dev/null || fail "the new lead's timeline is gone"
stop_all

# --- what is left: ids and outcomes of the old leads, everything of the new one
sqlite3 "$T/d/ingest.db" "SELECT * FROM leads WHERE id IN $IN" >"$T/old"
sqlite3 "$T/d/call-scheduler.db" "SELECT * FROM calls WHERE lead_id IN $IN" >>"$T/old"
sqlite3 "$T/d/zoho-sync.db" "SELECT * FROM zoho_leads WHERE lead_id IN $IN" >>"$T/old"
sqlite3 "$T/d/stats.db" "SELECT * FROM st_leads WHERE lead_id IN $IN; SELECT * FROM st_timeline WHERE lead_id IN $IN" >>"$T/old"
cat "$T/old"
for v in Old old1@example.com old2@example.com 9340000010 9340000020 340000010 "old note"; do
    grep -q -- "$v" "$T/old" && fail "'$v' kept past its retention"
done
[ "$(grep -c "$O1" "$T/old")" -ge 4 ] || fail "the old lead's rows (ids) should stay"
[ "$(sqlite3 "$T/d/ingest.db" "SELECT first_name FROM leads WHERE id = '$N1'")" = New ] || fail "the new lead was scrubbed"
[ "$(sqlite3 "$T/d/call-scheduler.db" "SELECT phone_e164 FROM calls WHERE lead_id = '$N1'")" = +919340000030 ] ||
    fail "the new call was scrubbed"
[ "$(sqlite3 "$T/d/stats.db" "SELECT count(*) FROM st_timeline WHERE lead_id IN $IN")" -eq 0 ] ||
    fail "old timelines kept past STATS_RETENTION_DAYS"
echo "PASS"
