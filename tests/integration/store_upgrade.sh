#!/usr/bin/env bash
# Issue 19, schema versions: stores made by the release before versions (no user_version,
# version 1's tables) open, migrate forward in one transaction and keep every lead, call and
# cursor; a store written by a newer leadbus (user_version 999) is refused at start with an
# ERROR naming the file and both versions, and is left as it was.
#
# The fixture stores are made here, not committed as binary files: `make_release1_stores`
# runs leadbus --target=all, posts leads until every call ended, stops it, and rewinds each
# store to what release 1 left on disk (undoes the steps after version 1; user_version 0).
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
P=$(free_port)
URL="http://127.0.0.1:$P"
N=12
export PORT=$P HTTP_BIND=127.0.0.1 API_KEYS=$KEY CALL_HOURS=always EXOTEL_CALL_DELAY_MS=100 \
    EXOTEL_MAX_RETRIES=1 SANDBOX_RING_MS=100 SANDBOX_OUTCOME_MODE=last-digit
STORES="ingest zoho-sync call-scheduler dialer stats"

start_all() { # DATA_DIR
    start all env DATA_DIR="$1" "$LEADBUS" --target=all
    ALL=$LAST_PID
    wait_for 20 "leadbus --target=all" curl -fsS "$URL/readyz"
}
stop_all() { kill -TERM "$ALL"; wait_pid 20 "$ALL"; }
settled() { # N: every lead synced and every call ended
    curl -s "$URL/exotel/stats" | grep -c "\"pending\":0,\"total\":$1,.*\"synced\":$1" >/dev/null
}
post() {
    curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/leads" -H "Content-Type: application/json" \
        -H "X-API-Key: $KEY" -d "$1" | grep -c 202 >/dev/null || fail "post $1"
}

make_release1_stores() { # DIR
    start_all "$1"
    for i in $(seq 1 $N); do
        post "{\"name\":\"Fixture $i\",\"phone\":\"93100$(printf '%04d' "$i")0\",\"email\":\"f$i@example.com\",\"notes\":\"n$i\"}"
    done
    wait_for 60 "$N leads synced and called" settled $N
    stop_all
    # Undo the steps after version 1 (newest first), as release 1 had no user_version.
    sqlite3 "$1/ingest.db" "ALTER TABLE leads DROP COLUMN erased_ms"
    sqlite3 "$1/stats.db" "DROP TABLE st_speed; DROP TABLE st_attempt_start; DROP TABLE st_agents;
        DROP TABLE st_agent_calls; ALTER TABLE st_leads DROP COLUMN erased_ms"
    # zoho-sync's outcomes learnt their agent (issue 20), added by column as first_try_ms was
    sqlite3 "$1/zoho-sync.db" "ALTER TABLE zoho_outcomes DROP COLUMN agent;
        ALTER TABLE zoho_outcomes DROP COLUMN agent_leg; ALTER TABLE zoho_outcomes DROP COLUMN detail;"
    # dialer's step 3 added the agent pool: its tables, index and the attempts' agent columns
    sqlite3 "$1/dialer.db" "BEGIN; DROP INDEX attempts_agent; DROP TABLE agents; DROP TABLE agent_cursor;
        ALTER TABLE attempts DROP COLUMN agent; ALTER TABLE attempts DROP COLUMN agent_number;
        ALTER TABLE attempts DROP COLUMN agent_leg; COMMIT;"
    # dialer's step 2 rebuilt attempts with CHECK(state IN ...): rebuild it as release 1 had it
    sqlite3 "$1/dialer.db" "BEGIN; CREATE TABLE a1(call_id TEXT NOT NULL, attempt INTEGER NOT NULL,
        lead_id TEXT NOT NULL, phone_e164 TEXT NOT NULL, phone_dial TEXT NOT NULL,
        due_ms INTEGER NOT NULL, state TEXT NOT NULL, sid TEXT, status TEXT,
        duration_s INTEGER NOT NULL DEFAULT 0, recording TEXT, detail TEXT,
        tries INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL, dialed_ms INTEGER,
        queued_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY(call_id, attempt));
        INSERT INTO a1 SELECT * FROM attempts; DROP TABLE attempts; ALTER TABLE a1 RENAME TO attempts;
        CREATE INDEX attempts_work ON attempts(state, next_ms);
        CREATE UNIQUE INDEX attempts_sid ON attempts(sid) WHERE sid IS NOT NULL;
        CREATE INDEX attempts_dialed ON attempts(dialed_ms); COMMIT;"
    # call-scheduler's step 2 rebuilt calls with CHECK(state IN ...): rebuild it as release 1 had it
    sqlite3 "$1/call-scheduler.db" "BEGIN; CREATE TABLE c1(call_id TEXT PRIMARY KEY,
        lead_id TEXT NOT NULL, phone_e164 TEXT NOT NULL, phone_dial TEXT NOT NULL,
        received_ms INTEGER NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL,
        due_ms INTEGER NOT NULL, status TEXT, detail TEXT, updated_ms INTEGER NOT NULL);
        INSERT INTO c1 SELECT * FROM calls; DROP TABLE calls; ALTER TABLE c1 RENAME TO calls;
        CREATE INDEX calls_due ON calls(state, due_ms);
        CREATE INDEX calls_phone_received ON calls(phone_e164, received_ms);
        CREATE INDEX calls_state ON calls(state, updated_ms); COMMIT;"
    for s in $STORES; do sqlite3 "$1/$s.db" "PRAGMA user_version = 0"; done
}

# What must survive an upgrade: leads, calls, attempts, Zoho links, cursors, stream epochs.
snapshot() { # DIR
    local d=$1
    sqlite3 "$d/ingest.db" "SELECT id, first_name, last_name, email, phone_e164, notes FROM leads ORDER BY id"
    sqlite3 "$d/call-scheduler.db" "SELECT call_id, lead_id, state, status FROM calls ORDER BY call_id"
    sqlite3 "$d/dialer.db" "SELECT call_id, attempt, state, status, sid FROM attempts ORDER BY 1, 2"
    sqlite3 "$d/zoho-sync.db" "SELECT lead_id, state, zoho_id FROM zoho_leads ORDER BY lead_id"
    sqlite3 "$d/stats.db" "SELECT lead_id, name, phone FROM st_leads ORDER BY lead_id"
    for s in $STORES; do
        echo "== $s"
        sqlite3 "$d/$s.db" "SELECT * FROM bus_epoch" 2>/dev/null || true
        sqlite3 "$d/$s.db" "SELECT * FROM bus_cursors ORDER BY 1, 2" 2>/dev/null || true
    done
}

make_release1_stores "$T/d"
snapshot "$T/d" >"$T/before"
[ "$(sqlite3 "$T/d/ingest.db" "SELECT count(*) FROM leads")" -eq $N ] || fail "fixture: not $N leads"
[ "$(sqlite3 "$T/d/call-scheduler.db" "SELECT count(*) FROM calls")" -eq $N ] || fail "fixture: not $N calls"
grep -q . <(sqlite3 "$T/d/stats.db" "SELECT * FROM bus_cursors") || fail "fixture: stats has no cursor"

# --- upgrade: this binary adopts them as version 1 and runs its steps
start_all "$T/d"
upgrades=$(grep -c 'Store schema upgraded' "$T/all.log")
[ "$upgrades" -eq 5 ] || fail "expected 5 stores adopted and upgraded, the log says $upgrades"
grep 'Store schema upgraded' "$T/all.log" | grep 'ingest.db' | grep -c 'toVersion: 2' >/dev/null ||
    fail "ingest.db's upgrade to version 2 not logged"
wait_for 20 "stats after the upgrade" settled $N
stop_all
snapshot "$T/d" >"$T/after"
diff "$T/before" "$T/after" || fail "the upgrade changed leads, calls or cursors"
[ "$(sqlite3 "$T/d/ingest.db" "PRAGMA user_version")" -eq 2 ] || fail "ingest.db not at version 2"
sqlite3 "$T/d/ingest.db" "SELECT count(erased_ms) FROM leads" >/dev/null || fail "no leads.erased_ms"
[ "$(sqlite3 "$T/d/stats.db" "PRAGMA user_version")" -eq 3 ] || fail "stats.db not at version 3"
sqlite3 "$T/d/stats.db" "INSERT INTO st_agents VALUES('x', 'ringing', 0)" 2>/dev/null &&
    fail "stats.db: an agent state outside the state machine was stored (no CHECK)"
sqlite3 "$T/d/stats.db" "SELECT count(erased_ms) FROM st_leads" >/dev/null || fail "no st_leads.erased_ms"
[ "$(sqlite3 "$T/d/dialer.db" "PRAGMA user_version")" -eq 3 ] || fail "dialer.db not at version 3"
sqlite3 "$T/d/dialer.db" "UPDATE attempts SET state = 'ringing'" 2>/dev/null &&
    fail "dialer.db: an attempt state outside the state machine was stored (no CHECK)"
sqlite3 "$T/d/dialer.db" "SELECT count(agent), count(agent_leg) FROM attempts" >/dev/null ||
    fail "dialer.db: no agent columns after step 3"
sqlite3 "$T/d/dialer.db" "INSERT INTO agents(name, number, state) VALUES('x', '+919800000001', 'away')" 2>/dev/null &&
    fail "dialer.db: an agent state outside the state machine was stored (no CHECK)"
sqlite3 "$T/d/dialer.db" "INSERT INTO agents(name, number, state) VALUES('x', '+919800000001', 'busy')" 2>/dev/null &&
    fail "dialer.db: a busy agent without a call was stored"
sqlite3 "$T/d/zoho-sync.db" "SELECT count(agent), count(agent_leg), count(detail) FROM zoho_outcomes" >/dev/null ||
    fail "zoho-sync.db: no agent columns on zoho_outcomes after the upgrade"
[ "$(sqlite3 "$T/d/call-scheduler.db" "PRAGMA user_version")" -eq 2 ] || fail "call-scheduler.db not at version 2"
sqlite3 "$T/d/call-scheduler.db" "UPDATE calls SET state = 'ringing'" 2>/dev/null &&
    fail "call-scheduler.db: a call state outside the state machine was stored (no CHECK)"
[ "$(sqlite3 "$T/d/zoho-sync.db" "PRAGMA user_version")" -eq 1 ] || fail "zoho-sync.db not at version 1"
echo "upgraded: $N leads, calls and every cursor kept; ingest.db and call-scheduler.db at version 2, stats.db and dialer.db at 3, zoho-sync.db at 1"

# ... and the upgraded deployment takes new leads (and a second start changes nothing)
start_all "$T/d"
post '{"name":"After Upgrade","phone":"9310099990"}'
wait_for 30 "the lead posted after the upgrade" settled $((N + 1))
stop_all
[ "$(grep -c 'Store schema upgraded' "$T/all.log")" -eq 5 ] || fail "a second start upgraded again"

# --- a store from a newer leadbus is refused, naming the file and both versions, left as it was
sqlite3 "$T/d/ingest.db" "PRAGMA user_version = 999"
: >"$T/newer.log"
rc=0
timeout 30 env DATA_DIR="$T/d" "$LEADBUS" --target=all >"$T/newer.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a store of version 999 was not refused (exit $rc)"
grep 'ERROR' "$T/newer.log" | grep 'newer leadbus' | grep "$T/d/ingest.db" | grep -c 'version 999.*up to 2' >/dev/null ||
    fail "no ERROR naming the file and both versions: $(cat "$T/newer.log")"
grep -q "leadbus started" "$T/newer.log" && fail "started with a newer store"
[ "$(sqlite3 "$T/d/ingest.db" "PRAGMA user_version")" -eq 999 ] || fail "the newer store was changed"
echo "refused (exit $rc): $(grep 'newer leadbus' "$T/newer.log" | head -1)"
echo "PASS"
