#!/usr/bin/env bash
# Issue 14, case 5 and the start-up refusals: each unsafe configuration stops start-up with
# exit 2 and one line naming the variable, before anything listens: a partial credential
# set (an empty value, a typo), a split target whose sandbox URL no process serves, the
# sandbox beside a live provider without SANDBOX=on, live calls with a loopback or plain-http
# callback URL. Unknown settings with leadbus's prefixes are warned about with a suggestion.
# Control cases: `make run` with nothing set, and split targets given explicit sandbox URLs.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
export HTTP_BIND=127.0.0.1 API_KEYS=$KEY
LIVE_EXOTEL=(EXOTEL_ACCOUNT_SID=YOUR_SID EXOTEL_API_KEY=YOUR_KEY EXOTEL_API_TOKEN=YOUR_TOKEN
    EXOTEL_EXOPHONE=08000000000 EXOTEL_AGENT_NUMBER=08000000001)
LIVE_ZOHO=(ZOHO_CLIENT_ID=YOUR_ID ZOHO_CLIENT_SECRET=YOUR_SECRET ZOHO_REFRESH_TOKEN=YOUR_REFRESH)
n=0

# refused TARGET EXPECTED-LINE-PREFIX VAR=value...: exit 2, one "leadbus: " line starting so,
# and nothing listening on the port meanwhile.
refused() {
    local target=$1 want=$2; shift 2
    n=$((n + 1))
    local port rc=0 log="$T/refused$n.log"
    port=$(free_port)
    timeout 20 env PORT=$port DATA_DIR="$T/d$n" BUS_INGEST_PUB="ipc://$T/i$n.ipc" BUS_INGEST_REPLAY="ipc://$T/ir$n.ipc" \
        "$@" "$LEADBUS" --target="$target" >"$log" 2>&1 || rc=$?
    local lines
    lines=$(grep '^leadbus: ' "$log" || true)
    [ $rc -eq 2 ] || fail "[$*] --target=$target: exit $rc, not 2: $(cat "$log")"
    [ "$(grep -c . <<<"$lines")" -eq 1 ] || fail "[$*]: expected one refusal line: $(cat "$log")"
    [[ "$lines" == "leadbus: $want"* ]] || fail "[$*]: expected 'leadbus: $want…', got: $lines"
    grep -q "leadbus started" "$log" && fail "[$*]: started before refusing"
    echo "refused: $lines"
}

# started TARGET VAR=value...: starts, answers /healthz, stops on SIGTERM; log in $T/started.log
started() {
    local target=$1; shift
    n=$((n + 1))
    local port
    port=$(free_port)
    : >"$T/started.log"
    start started env PORT=$port DATA_DIR="$T/d$n" BUS_INGEST_PUB="ipc://$T/i$n.ipc" BUS_INGEST_REPLAY="ipc://$T/ir$n.ipc" \
        BUS_ZOHO_SYNC_PUB="ipc://$T/z$n.ipc" BUS_ZOHO_SYNC_REPLAY="ipc://$T/zr$n.ipc" \
        BUS_CALL_SCHEDULER_PUB="ipc://$T/s$n.ipc" BUS_CALL_SCHEDULER_REPLAY="ipc://$T/sr$n.ipc" \
        BUS_DIALER_PUB="ipc://$T/x$n.ipc" BUS_DIALER_REPLAY="ipc://$T/xr$n.ipc" \
        "$@" "$LEADBUS" --target="$target"
    local pid=$LAST_PID
    wait_for 15 "--target=$target [$*] to start" curl -fsS "http://127.0.0.1:$port/healthz"
    URL="http://127.0.0.1:$port"
    STARTED=$pid
}
stop_started() { kill -TERM "$STARTED"; wait_pid 10 "$STARTED"; }

# --- case 5: one credential empty, or misspelt
refused all "EXOTEL_API_TOKEN: missing or empty while other Exotel credentials are set" \
    EXOTEL_ACCOUNT_SID=YOUR_SID EXOTEL_API_KEY=YOUR_KEY EXOTEL_API_TOKEN=
refused dialer "EXOTEL_API_KEY: missing or empty" EXOTEL_ACCOUNT_SID=YOUR_SID EXOTEL_APIKEY=YOUR_KEY \
    EXOTEL_API_TOKEN=YOUR_TOKEN
grep -q "EXOTEL_APIKEY is set: a typo?" "$T/refused$n.log" || fail "the refusal should point at the typo"
grep -q "Unknown setting EXOTEL_APIKEY ignored: did you mean EXOTEL_API_KEY?" "$T/refused$n.log" ||
    fail "no warning about the unknown EXOTEL_APIKEY"
refused ingest "ZOHO_CLIENT_SECRET: missing or empty while other Zoho credentials are set" ZOHO_CLIENT_ID=YOUR_ID
# In .env too (empty there counts as missing as well).
printf 'ZOHO_CLIENT_ID=YOUR_ID\nZOHO_CLIENT_SECRET=\nZOHO_REFRESH_TOKEN=YOUR_REFRESH\n' >.env
refused zoho-sync "ZOHO_CLIENT_SECRET: missing or empty"
rm .env

# --- a split target with no credentials and no URL: nobody serves its /sandbox
refused dialer "EXOTEL_BASE_URL: Exotel has no credentials and this process does not run the sandbox"
refused zoho-sync "ZOHO_ACCOUNTS_URL: Zoho has no credentials and this process does not run the sandbox"
refused ingest,call-scheduler,dialer "EXOTEL_BASE_URL: Exotel has no credentials"
refused all "EXOTEL_ACCOUNT_SID: required with SANDBOX=off" SANDBOX=off
refused all "SANDBOX: expected one of auto, on, off" SANDBOX=yes

# --- the sandbox beside a live provider
refused all "SANDBOX: Exotel is live but Zoho has no credentials and would be simulated beside it" \
    "${LIVE_EXOTEL[@]}"
refused all "SANDBOX: Zoho is live but Exotel has no credentials" "${LIVE_ZOHO[@]}"
refused dialer,sandbox "SANDBOX: the sandbox target runs beside live Exotel" "${LIVE_EXOTEL[@]}"

# --- live calls need a callback URL Exotel can reach over TLS
refused dialer "PUBLIC_BASE_URL: live Exotel calls need an https URL Exotel can reach (got 'http://127.0.0.1:" \
    "${LIVE_EXOTEL[@]}"
refused all "PUBLIC_BASE_URL: live Exotel calls need an https URL" "${LIVE_EXOTEL[@]}" "${LIVE_ZOHO[@]}" \
    EXOTEL_ENABLED=true PUBLIC_BASE_URL=http://leads.example.com
refused all "PUBLIC_BASE_URL: " "${LIVE_EXOTEL[@]}" "${LIVE_ZOHO[@]}" EXOTEL_ENABLED=true \
    PUBLIC_BASE_URL=https://localhost:3000

# --- what still starts
# make run: nothing configured, the sandbox for both, as before.
started all CALL_HOUR=always EXOTEL_SOMETHING_ELSE_ENTIRELY=1
wait_for 10 "ready" curl -fsS "$URL/readyz"
grep -q "Exotel: SANDBOX" "$T/started.log" && grep -q "Zoho: SANDBOX" "$T/started.log" || fail "banner"
grep -q "Unknown setting CALL_HOUR ignored: did you mean CALL_HOURS?" "$T/started.log" || fail "CALL_HOUR warning"
grep -q "Unknown setting EXOTEL_SOMETHING_ELSE_ENTIRELY ignored (not a leadbus setting)" "$T/started.log" ||
    fail "warning without a suggestion"
SB="$URL"
# Split targets pointed at that sandbox explicitly.
started dialer EXOTEL_BASE_URL="$SB/sandbox/exotel"
DIALER=$STARTED
started zoho-sync ZOHO_ACCOUNTS_URL="$SB/sandbox/zoho" ZOHO_API_DOMAIN="$SB/sandbox/zoho"
stop_started
STARTED=$DIALER; stop_started
# Live Exotel with calls enabled and a public https callback URL, or an explicit opt-in.
started dialer "${LIVE_EXOTEL[@]}" EXOTEL_ENABLED=true PUBLIC_BASE_URL=https://leads.example.com
stop_started
started dialer "${LIVE_EXOTEL[@]}" ALLOW_INSECURE_CALLBACKS=true
grep -q "Exotel: live account" "$T/started.log" || fail "live banner"
stop_started
# The sandbox beside a live Exotel when SANDBOX=on says so.
started all "${LIVE_EXOTEL[@]}" SANDBOX=on
curl -fsS "$URL/sandbox/requests" >/dev/null || fail "SANDBOX=on: no sandbox"
grep -q "Zoho: SANDBOX" "$T/started.log" && grep -q "Exotel: live account" "$T/started.log" || fail "banner"
stop_started
echo "startup_refusals: ok ($n configurations)"
