#!/usr/bin/env bash
# Agents on the dashboard (issue 20): a stand-in dialer (bus_peer emit) publishes call.status
# events carrying the `agent` field; stats shows each agent's state (on a call / free) and
# today's calls in /exotel/stats, counts leadbus_agent_calls_total{agent,status}, and the
# dashboard in headless Chromium lists them (screenshots at desktop and phone width in
# $BUILD/artifacts/). Events applied again (a restart) count nothing twice.
. "$(dirname "$0")/lib.sh"
KEY=test-key-0123456789abcdef
P=$(free_port)
URL="http://127.0.0.1:$P"
export BUS_DIALER_PUB="ipc://$T/d.ipc" BUS_DIALER_REPLAY="ipc://$T/dr.ipc" \
    BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" API_KEYS=$KEY CALL_HOURS=always
: >"$T/outcomes"
start dialer "$BUILD/bus_peer" emit --name dialer --db "$T/dialer.db" --pub "$BUS_DIALER_PUB" \
    --replay "$BUS_DIALER_REPLAY" --lines "$T/outcomes"
start_stats() {
    start stats env PORT=$P HTTP_BIND=127.0.0.1 DATA_DIR="$T/stats" "$LEADBUS" --target=stats
    STATS=$LAST_PID
    wait_for 15 "stats" curl -fsS "$URL/healthz"
}
start_stats
cat >>"$T/outcomes" <<'LINES'
ld_a call_ld_a 1 completed 42 Asha
ld_b call_ld_b 1 no-answer 0 Asha
ld_c call_ld_c 1 completed 65 Ravi
ld_d call_ld_d 1 busy 0 Ravi
ld_e call_ld_e 1 in-progress 0 Ravi
ld_f call_ld_f 1 no-answer 0
LINES
metric() { curl -s "$URL/metrics" | awk -v n="$1" '$1 == n {v = $2} END {print v + 0}'; }
settled() { [ "$(metric 'leadbus_call_outcomes_total{status="no-answer"}')" = 2 ] &&
    [ "$(metric 'leadbus_agent_calls_total{agent="Ravi",status="busy"}')" = 1 ] &&
    curl -s "$URL/exotel/stats" | grep -c '"name":"Ravi","state":"on-call"' >/dev/null; }
wait_for 20 "stats to apply the stand-in dialer's events" settled
for want in 'agent="Asha",status="completed"} 1' 'agent="Asha",status="no-answer"} 1' \
    'agent="Ravi",status="completed"} 1' 'agent="Ravi",status="busy"} 1'; do
    curl -s "$URL/metrics" | grep -qF "leadbus_agent_calls_total{$want" || fail "metrics lack $want"
done
curl -s "$URL/metrics" | grep -c 'leadbus_agent_calls_total{agent=""' >/dev/null && fail "an agent series for a call without agent"
curl -s "$URL/exotel/stats" >"$T/s.json"
node -e '
const s = JSON.parse(require("fs").readFileSync(process.argv[1])).stats;
const a = Object.fromEntries(s.agents.map((x) => [x.name, x]));
if (s.agents.length !== 2) throw new Error("agents " + JSON.stringify(s.agents));
if (a.Asha.state !== "idle" || a.Asha.callsToday !== 2 || a.Asha.connectedToday !== 1) throw new Error("Asha " + JSON.stringify(a.Asha));
if (a.Ravi.state !== "on-call" || a.Ravi.callsToday !== 2 || a.Ravi.connectedToday !== 1) throw new Error("Ravi " + JSON.stringify(a.Ravi));
' "$T/s.json" || fail "/exotel/stats agents: $(cat "$T/s.json")"
echo "agents: Asha free (2 calls today, 1 connected), Ravi on a call (2, 1)"

# --- the dashboard lists them
CHROME=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --user-data-dir="$T/chrome" --virtual-time-budget=5000)
"${CHROME[@]}" --enable-logging=stderr --v=0 --dump-dom "$URL/" >"$T/dom.html" 2>"$T/chrome.log" ||
    fail "chromium failed: $(tail -5 "$T/chrome.log")"
grep -q '<td>Asha</td><td><span class="pill idle">free</span></td><td>2</td><td>1</td>' "$T/dom.html" ||
    fail "the dashboard does not list Asha: $(grep -o '<table id="agents".*</table>' "$T/dom.html" | head -c 600)"
grep -q '<td>Ravi</td><td><span class="pill on-call">on a call</span></td><td>2</td><td>1</td>' "$T/dom.html" ||
    fail "the dashboard does not list Ravi"
grep -q 'id="agentsEmpty" class="muted" hidden' "$T/dom.html" || fail "the empty state shows beside agents"
if grep -i 'CONSOLE' "$T/chrome.log" | grep -iq 'error\|uncaught'; then
    fail "console errors: $(grep -i CONSOLE "$T/chrome.log")"
fi
mkdir -p "$BUILD/artifacts"
"${CHROME[@]}" --screenshot="$BUILD/artifacts/dashboard-agents.png" --window-size=1100,1400 "$URL/" \
    >/dev/null 2>&1 || fail "screenshot"
"${CHROME[@]}" --screenshot="$BUILD/artifacts/dashboard-agents-phone.png" --window-size=390,1600 "$URL/" \
    >/dev/null 2>&1 || fail "phone screenshot"
echo "the dashboard lists both agents; screenshots in $BUILD/artifacts/"

# --- a restart applies nothing twice
kill -TERM "$STATS"; wait_pid 15 "$STATS"
start_stats
wait_for 10 "the figures after the restart" settled
[ "$(metric 'leadbus_agent_calls_total{agent="Asha",status="completed"}')" = 1 ] || fail "counted twice"
echo "PASS"
