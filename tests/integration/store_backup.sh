#!/usr/bin/env bash
# Issue 19, backup and restore: `leadbus backup DIR` copies every store of a running
# --target=all while leads flow (files 0600, one line per store); `leadbus restore` puts the
# copies in a fresh DATA_DIR (refused while a process runs on it) and the restored deployment
# finishes every lead the copy holds, none lost or applied twice. Then one store alone: the
# subscriber stats restored from the older copy catches up; the publisher ingest restored
# alone (new stream epoch) keeps taking leads, and nothing downstream is counted twice.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
P=$(free_port)
URL="http://127.0.0.1:$P"
N=60
PA=$(free_port)
SBURL="http://127.0.0.1:$PA"
# Exotel and Zoho (the sandbox) keep their records across the restore, as the real ones do.
start sandbox env PORT=$PA HTTP_BIND=127.0.0.1 DATA_DIR="$T/sb" API_KEYS=$KEY SANDBOX_RING_MS=100 \
    SANDBOX_OUTCOME_MODE=last-digit "$LEADBUS" --target=sandbox
wait_for 10 sandbox curl -fsS "$SBURL/healthz"
export PORT=$P HTTP_BIND=127.0.0.1 API_KEYS=$KEY CALL_HOURS=always EXOTEL_CALL_DELAY_MS=100 \
    EXOTEL_MAX_RETRIES=1 EXOTEL_BASE_URL="$SBURL/sandbox/exotel" \
    ZOHO_ACCOUNTS_URL="$SBURL/sandbox/zoho" ZOHO_API_DOMAIN="$SBURL/sandbox/zoho"

start_all() { # DATA_DIR
    start all env DATA_DIR="$1" "$LEADBUS" --target=all
    ALL=$LAST_PID
    wait_for 20 "leadbus --target=all" curl -fsS "$URL/readyz"
}
stop_all() { kill -TERM "$ALL"; wait_pid 20 "$ALL"; }
settled() { # N: every lead synced and its one call ended
    curl -s "$URL/exotel/stats" | grep -c "\"pending\":0,\"total\":$1,.*\"attempts\":$1,.*\"synced\":$1," >/dev/null
}
post() { # I
    curl -s -o /dev/null -w '%{http_code}\n' -X POST "$URL/leads" -H "Content-Type: application/json" \
        -H "X-API-Key: $KEY" \
        -d "{\"name\":\"Backup $1\",\"phone\":\"93200$(printf '%04d' "$1")0\",\"email\":\"b$1@example.com\"}"
}
count() { sqlite3 "$1" "$2"; }
# Every lead of ingest.db once in each downstream store: prints what differs (nothing is right).
compare() { # DATA_DIR
    sqlite3 "$1/ingest.db" "ATTACH '$1/call-scheduler.db' AS c; ATTACH '$1/zoho-sync.db' AS z;
        ATTACH '$1/stats.db' AS s; ATTACH '$1/dialer.db' AS d;
        SELECT 'no call: ' || id FROM leads WHERE id NOT IN (SELECT lead_id FROM c.calls);
        SELECT 'not synced: ' || id FROM leads WHERE id NOT IN (SELECT lead_id FROM z.zoho_leads WHERE state = 'synced');
        SELECT 'not in stats: ' || id FROM leads WHERE id NOT IN (SELECT lead_id FROM s.st_leads);
        SELECT 'attempts: ' || lead_id || ' ' || count(*) FROM d.attempts GROUP BY lead_id HAVING count(*) <> 1;
        SELECT 'calls: ' || lead_id || ' ' || count(*) FROM c.calls GROUP BY lead_id HAVING count(*) <> 1;"
}

# --- a backup while leads flow
start_all "$T/d1"
(for i in $(seq 1 $N); do post "$i"; done >"$T/posted") &
POSTER=$!
PIDS+=("$POSTER")
wait_for 30 "20 leads accepted" bash -c "[ \$(grep -c 202 '$T/posted') -ge 20 ]"
DATA_DIR="$T/d1" "$LEADBUS" backup "$T/bk" >"$T/backup.out" 2>&1 || fail "backup: $(cat "$T/backup.out")"
cat "$T/backup.out"
wait_pid 60 "$POSTER"
[ "$(grep -c 202 "$T/posted")" -eq $N ] || fail "not every lead accepted: $(sort "$T/posted" | uniq -c)"
for s in stats dialer call-scheduler zoho-sync ingest; do
    grep -q "^$s: $T/bk/$s.db ([0-9]* bytes, schema version [1-9][0-9]*)$" "$T/backup.out" || fail "no line for $s"
    [ "$(stat -c %a "$T/bk/$s.db")" = 600 ] || fail "$s.db copy is not 0600"
    [ "$(sqlite3 "$T/bk/$s.db" "PRAGMA integrity_check")" = ok ] || fail "$s.db copy is not intact"
done
[ "$(grep -c . "$T/backup.out")" -eq 5 ] || fail "expected one line per store"
M=$(count "$T/bk/ingest.db" "SELECT count(*) FROM leads")
[ "$M" -ge 20 ] && [ "$M" -le $N ] || fail "the copy holds $M leads"
echo "backup taken mid-run: the copy holds $M of $N leads"

# a copy is never written over
DATA_DIR="$T/d1" "$LEADBUS" backup "$T/bk" >"$T/again.out" 2>&1 && fail "a backup overwrote a copy"
grep -q "^leadbus: backup: $T/bk/stats.db: cannot create the copy: File exists" "$T/again.out" ||
    fail "no refusal naming the copy: $(cat "$T/again.out")"

# restore is refused while a process runs on the store
DATA_DIR="$T/d1" "$LEADBUS" restore "$T/bk" >"$T/busy.out" 2>&1 && fail "restored under a running process"
grep -q "in use by another process (pid $ALL" "$T/busy.out" || fail "busy: $(cat "$T/busy.out")"
wait_for 60 "the original run to finish its $N leads" settled $N
stop_all

# --- the whole deployment restored into a fresh DATA_DIR
DATA_DIR="$T/d2" "$LEADBUS" restore "$T/bk" >"$T/restore.out" 2>&1 || fail "restore: $(cat "$T/restore.out")"
cat "$T/restore.out"
[ "$(grep -c 'new stream epoch' "$T/restore.out")" -eq 4 ] || fail "expected a new epoch for each publisher"
start_all "$T/d2"
wait_for 90 "the restored deployment to finish its $M leads" settled $M
stop_all
diff <(compare "$T/d2") /dev/null || fail "restored deployment: leads lost or applied twice"
[ "$(count "$T/d2/call-scheduler.db" "SELECT count(*) FROM calls")" -eq "$M" ] || fail "calls != $M"
[ "$(count "$T/d2/stats.db" "SELECT count(*) FROM st_leads")" -eq "$M" ] || fail "stats leads != $M"
echo "restored: $M leads, each with one call, one attempt, synced, counted once"

# --- one store alone: stats (a subscriber) from the older copy catches up by replay
start_all "$T/d2"
for i in $(seq 1001 1005); do post "$i" | grep -c 202 >/dev/null || fail "post $i after the restore"; done
K=$((M + 5))
wait_for 60 "$K leads" settled $K
stop_all
DATA_DIR="$T/d2" "$LEADBUS" restore "$T/bk" stats >"$T/one.out" 2>&1 || fail "restore stats: $(cat "$T/one.out")"
grep -q '^stats: ' "$T/one.out" || fail "restore stats: $(cat "$T/one.out")"
start_all "$T/d2"
wait_for 60 "stats restored alone to catch up to $K" settled $K
stop_all

# --- ingest (a publisher) restored alone: new epoch; its leads since the copy are gone from
# ingest only, downstream keeps them and counts nothing twice; new leads flow.
DATA_DIR="$T/d2" "$LEADBUS" restore "$T/bk" ingest >"$T/ing.out" 2>&1 || fail "restore ingest: $(cat "$T/ing.out")"
grep -q '^ingest: .*new stream epoch' "$T/ing.out" || fail "restore ingest: $(cat "$T/ing.out")"
start_all "$T/d2"
for i in 2001 2002; do post "$i" | grep -c 202 >/dev/null || fail "post $i after restoring ingest"; done
wait_for 60 "$((K + 2)) leads after ingest was restored alone" settled $((K + 2))
stop_all
grep -q 'Publisher stream reset' "$T/all.log" || fail "no subscriber noticed ingest's new epoch"
[ "$(count "$T/d2/stats.db" "SELECT count(*) FROM st_leads")" -eq $((K + 2)) ] || fail "stats leads"
echo "PASS"
