#!/usr/bin/env bash
# The leadbus binary: --help, --version, bad targets and settings, health
# endpoints, and a clean stop on SIGTERM.
. "$(dirname "$0")/lib.sh"
cd "$T"

"$LEADBUS" --version | grep -Eq '^leadbus [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
"$LEADBUS" --help | grep -c -- "--target" >/dev/null || fail "--help"

rc=0; "$LEADBUS" --target=nosuch 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q "unknown target 'nosuch'" "$T/err" || fail "unknown target: rc=$rc $(cat "$T/err")"

rc=0; PORT=notaport "$LEADBUS" --target=all 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -qx "leadbus: PORT: expected an integer from 1 to 65535" "$T/err" \
    || fail "bad PORT: rc=$rc $(cat "$T/err")"

echo "LOG_FORMAT=yaml" >.env
rc=0; "$LEADBUS" --target=all 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q "LOG_FORMAT: expected one of text, json" "$T/err" || fail ".env value not read"
echo "LOG_FORMAT=json" >.env

PORT_N=$(free_port)
start leadbus env PORT=$PORT_N DATA_DIR="$T/data" HTTP_BIND=127.0.0.1 "$LEADBUS" --target=all
LB=$LAST_PID
wait_for 10 "healthz" curl -fsS "http://127.0.0.1:$PORT_N/healthz"
curl -fsS "http://127.0.0.1:$PORT_N/healthz" | grep -c '"status":"ok"' >/dev/null || fail healthz
curl -fsS "http://127.0.0.1:$PORT_N/readyz" | grep -c '"status":"ready"' >/dev/null || fail readyz
code=$(curl -s -o "$T/404" -w '%{http_code}' "http://127.0.0.1:$PORT_N/nope")
[ "$code" = 404 ] && grep -q '"code":"not_found"' "$T/404" || fail "404 answer"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT_N/healthz")
[ "$code" = 405 ] || fail "405 answer ($code)"
grep -q '"msg":"leadbus started"' "$T/leadbus.log" || fail "JSON log line from .env format"
# No Exotel/Zoho credentials: --target=all serves the sandbox and says so.
curl -fsS "http://127.0.0.1:$PORT_N/sandbox/requests" >/dev/null || fail "sandbox not started without credentials"
grep -q "Exotel: SANDBOX" "$T/leadbus.log" && grep -q "Zoho: SANDBOX" "$T/leadbus.log" || fail "banner"
grep -q "\"baseUrl\":\"http://127.0.0.1:$PORT_N/sandbox/exotel\"" "$T/leadbus.log" || fail "sandbox URL"

t0=$(date +%s%N)
kill -TERM "$LB"
wait_pid 5 "$LB" || fail "leadbus exited non-zero on SIGTERM"
echo "stopped on SIGTERM in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
grep -q '"msg":"Stopped"' "$T/leadbus.log" || fail "no Stopped line"

# With live Exotel credentials the dialer needs the operator's own ExoPhone: one line names it.
PORT_N=$(free_port)
LIVE_EXOTEL=(EXOTEL_ACCOUNT_SID=YOUR_SID EXOTEL_API_KEY=YOUR_API_KEY EXOTEL_API_TOKEN=YOUR_API_TOKEN
    EXOTEL_SUBDOMAIN=api.in.exotel.com)
rc=0
env PORT=$PORT_N DATA_DIR="$T/data3" HTTP_BIND=127.0.0.1 "${LIVE_EXOTEL[@]}" PUBLIC_BASE_URL=https://leads.example.com \
    "$LEADBUS" --target=dialer >"$T/noexophone.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "^leadbus: dialer: EXOTEL_EXOPHONE: required" "$T/noexophone.log" ||
    fail "a live dialer without EXOTEL_EXOPHONE: exit $rc, $(cat "$T/noexophone.log")"

# With credentials for both APIs there is no sandbox, and the banner names the live hosts.
start live env PORT=$PORT_N DATA_DIR="$T/data2" HTTP_BIND=127.0.0.1 "${LIVE_EXOTEL[@]}" \
    EXOTEL_EXOPHONE=08000000000 EXOTEL_AGENT_NUMBER=08000000001 \
    ZOHO_CLIENT_ID=YOUR_CLIENT_ID ZOHO_CLIENT_SECRET=YOUR_SECRET ZOHO_REFRESH_TOKEN=YOUR_TOKEN ZOHO_DC=in \
    "$LEADBUS" --target=all
LIVE=$LAST_PID
wait_for 10 "healthz" curl -fsS "http://127.0.0.1:$PORT_N/healthz"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_N/sandbox/requests")
[ "$code" = 404 ] || fail "sandbox started although credentials are set ($code)"
grep -q '"baseUrl":"https://api.in.exotel.com"' "$T/live.log" || fail "live Exotel host"
grep -q '"accountsUrl":"https://accounts.zoho.in"' "$T/live.log" || fail "live Zoho accounts host"
grep -q "YOUR_API_TOKEN\|YOUR_SECRET\|YOUR_TOKEN" "$T/live.log" && fail "a secret reached the log"
kill -TERM "$LIVE"; wait_pid 5 "$LIVE"
