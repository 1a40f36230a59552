#!/usr/bin/env bash
# The leadbus binary: --help, --version, bad targets and settings, health
# endpoints, and a clean stop on SIGTERM.
. "$(dirname "$0")/lib.sh"
cd "$T"

"$LEADBUS" --version | grep -Eq '^leadbus [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
"$LEADBUS" --help | grep -q -- "--target" || fail "--help"

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
curl -fsS "http://127.0.0.1:$PORT_N/healthz" | grep -q '"status":"ok"' || fail healthz
curl -fsS "http://127.0.0.1:$PORT_N/readyz" | grep -q '"status":"ready"' || fail readyz
code=$(curl -s -o "$T/404" -w '%{http_code}' "http://127.0.0.1:$PORT_N/nope")
[ "$code" = 404 ] && grep -q '"code":"not_found"' "$T/404" || fail "404 answer"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT_N/healthz")
[ "$code" = 405 ] || fail "405 answer ($code)"
grep -q '"msg":"leadbus started"' "$T/leadbus.log" || fail "JSON log line from .env format"

t0=$(date +%s%N)
kill -TERM "$LB"
wait_pid 5 "$LB" || fail "leadbus exited non-zero on SIGTERM"
echo "stopped on SIGTERM in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
grep -q '"msg":"Stopped"' "$T/leadbus.log" || fail "no Stopped line"
