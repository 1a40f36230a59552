#!/usr/bin/env bash
# Issue 15, what is not the bus: files are 0600 in a 0755 directory under umask 022; the sandbox
# sends callbacks only to loopback URLs parsed properly (http://127.0.0.1@other-host/ refused), keeps
# its records and request log bounded (oldest dropped, counted in /metrics), and off loopback its
# inspection routes need X-API-Key. (Per-attempt callback tokens and the CallSid: calls_flow.sh.)
. "$(dirname "$0")/lib.sh"
KEY=test-key-0123456789abcdef
P=$(free_port); Q=$(free_port)
U="http://127.0.0.1:$P"
EX="$U/sandbox/exotel/v1/Accounts/sandbox"
ZO="$U/sandbox/zoho"

# --- one process, every target, in a 0755 directory, umask 022, no API_KEYS (api_key generated)
mkdir -m 0755 "$T/data"
(umask 022; exec env PORT=$P HTTP_BIND=127.0.0.1 DATA_DIR="$T/data" CALL_HOURS=always \
    EXOTEL_CALL_DELAY_MS=0 SANDBOX_RING_MS=50 SANDBOX_RECORDS_MAX=10 SANDBOX_REQUEST_LOG=10 \
    "$LEADBUS" --target=all) >>"$T/all.log" 2>&1 &
PIDS+=($!); ALL=$!
wait_for 20 "leadbus --target=all" curl -fsS "$U/readyz"
KEY=$(cat "$T/data/api_key")
lead() { curl -s -o /dev/null -w '%{http_code}' -X POST "$U/leads" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/json' -d "{\"name\":\"Lead $1\",\"phone\":\"98000$(printf %05d "$1")\"}"; }
[ "$(lead 1)" = 202 ] || fail "a lead"
in_zoho() { curl -fsS "$U/sandbox/zoho/records?module=Leads" | grep -c '"Last_Name"' >/dev/null; }
wait_for 20 "the lead in the sandbox's Zoho" in_zoho
wal_files() { ls "$T/data"/*-wal >/dev/null 2>&1; }
wait_for 10 "WAL files" wal_files
bad=$(find "$T/data" -type f ! -perm 0600 -printf '%m %p\n')
[ -z "$bad" ] || fail "files not 0600: $bad"
n=$(find "$T/data" -type f | wc -l)
ls "$T/data"/*.db "$T/data"/*.db-wal "$T/data"/*.db-shm "$T/data"/*.lock "$T/data/api_key" >/dev/null ||
    fail "expected stores, -wal, -shm, locks and api_key: $(ls "$T/data")"
echo "files: all $n files in a 0755 DATA_DIR under umask 022 are 0600"

# --- the sandbox's callbacks: loopback only, by libcurl's URL parser (userinfo refused)
connect() { curl -s -o /dev/null -w '%{http_code}' -u sandbox-key:sandbox-token -X POST "$EX/Calls/connect.json" \
    -d From=09800000001 -d To=09800000010 -d CallerId=08047000000 --data-urlencode "StatusCallback=$1"; }
refused() { grep -c 'Sandbox sends callbacks to loopback addresses only' "$T/all.log" || true; }
before=$(refused)
for url in "http://127.0.0.1@other-host.invalid/cb" "http://127.0.0.1:$Q@other-host.invalid/cb" \
    "http://127.0.0.1.other-host.invalid/cb" "http://[::1]@other-host.invalid/cb" "http://localhost.other-host.invalid/cb" \
    "http://user:pw@127.0.0.1:$Q/cb"; do
    [ "$(connect "$url")" = 200 ] || fail "connect with $url"
done
ok_before=$(refused)
[ $((ok_before - before)) -eq 6 ] || fail "expected 6 refused callback URLs, got $((ok_before - before))"
for url in "http://127.0.0.1:$Q/cb" "http://127.1.2.3:$Q/cb" "http://[::1]:$Q/cb" "http://localhost:$Q/cb"; do
    [ "$(connect "$url")" = 200 ] || fail "connect with $url"
done
[ "$(refused)" -eq "$ok_before" ] || fail "a loopback callback URL was refused"
echo "sandbox callbacks: 6 URLs that leave loopback (userinfo, look-alike hosts) refused, 4 loopback ones kept"

# --- bounded memory: SANDBOX_RECORDS_MAX=10 calls and Zoho records, SANDBOX_REQUEST_LOG=10
for i in $(seq 2 25); do [ "$(lead "$i")" = 202 ] || fail "lead $i"; done
dropped() { curl -fsS "$U/metrics" | awk -v w="$1" 'index($0, "leadbus_sandbox_dropped_total{what=\"" w "\"}") == 1 {print $2}'; }
has_dropped() { [ -n "$(dropped "$1")" ]; }
wait_for 30 "Zoho records to be dropped" has_dropped zoho_records
wait_for 30 "Exotel calls to be dropped" has_dropped exotel_calls
recs=$(curl -fsS "$U/sandbox/zoho/records?module=Leads" | grep -o '"id":"' | wc -l)
placed=$(curl -fsS "$U/sandbox/exotel/placed" | grep -o '"Sid"\|"sid"' | wc -l)
reqs=$(curl -fsS "$U/sandbox/requests" | grep -o '"ts":' | wc -l)
[ "$recs" -le 10 ] && [ "$placed" -le 10 ] && [ "$reqs" -le 10 ] || fail "caps: $recs records, $placed calls, $reqs requests"
[ -n "$(dropped request_log)" ] || fail "no request_log drops counted"
echo "caps: $recs Zoho leads, $placed calls, $reqs logged requests kept; dropped: records $(dropped zoho_records), calls $(dropped exotel_calls), requests $(dropped request_log)"
kill -TERM $ALL; wait_pid 15 $ALL || true

# --- off loopback (HTTP_BIND=0.0.0.0; the test still talks to 127.0.0.1) the inspection routes need a key
start sb env PORT=$P HTTP_BIND=0.0.0.0 DATA_DIR="$T/sb" API_KEYS=$KEY "$LEADBUS" --target=sandbox
wait_for 15 "the sandbox on 0.0.0.0" curl -fsS "$U/healthz"
for path in /sandbox/requests /sandbox/exotel/placed "/sandbox/zoho/records?module=Leads"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$U$path")
    [ "$code" = 401 ] || fail "$path without a key off loopback: $code"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: wrong-key-0123456789" "$U$path")
    [ "$code" = 401 ] || fail "$path with a wrong key: $code"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" "$U$path")
    [ "$code" = 200 ] || fail "$path with the key: $code"
done
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/sandbox/faults" -d reset)
[ "$code" = 401 ] || fail "POST /sandbox/faults without a key: $code"
echo "off loopback: the sandbox's inspection and control routes answer 401 without X-API-Key"
echo "security: ok"
