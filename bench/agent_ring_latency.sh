#!/usr/bin/env bash
# Speed to the agent's phone: time from POST /leads (the client's send) to the sandbox receiving
# the agent-first connect for that lead (the moment Exotel would ring the agent), with
# EXOTEL_CALL_DELAY_MS=0 and an agent pool of AGENTS_N agents (issue 20).
# Leads are posted at RATE per second for SECS seconds, each call ringing RING_MS, so about
# RATE * RING_MS / 1000 agents are busy at once; the rate limit is lifted on both sides.
# Prints p50/p99/max in ms and how many leads found no free agent at once.
# Usage: bench/agent_ring_latency.sh [RATE] [SECS] [AGENTS_N] [RING_MS]
# Needs node and a build in ./build (or BUILD=...). Traffic stays on 127.0.0.1.
set -euo pipefail
RATE=${1:-50}
SECS=${2:-10}
AGENTS_N=${3:-100}
RING_MS=${4:-1000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LEADBUS=${BUILD:-$ROOT/build}/leadbus
T=$(mktemp -d /tmp/leadbus-agentbench.XXXXXX)
KEY=bench-key-0123456789abcdef
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP_T:-}" ] || rm -rf "$T"' EXIT
PA=$((20000 + RANDOM % 10000)); PB=$((PA + 1))
N=$((RATE * SECS))
wait_url() { until curl -fs "$1" >/dev/null; do sleep 0.05; done; }

API_KEYS=$KEY PORT=$PA HTTP_BIND=127.0.0.1 DATA_DIR="$T/sb" LOG_LEVEL=warn \
    SANDBOX_EXOTEL_RATE_LIMIT=100000 SANDBOX_EXOTEL_RATE_WINDOW_MS=1000 SANDBOX_RING_MS=$RING_MS \
    SANDBOX_REQUEST_LOG=$((N * 3 + 1000)) "$LEADBUS" --target=sandbox >"$T/sandbox.log" 2>&1 &
wait_url "http://127.0.0.1:$PA/healthz"
agents=$(awk -v n="$AGENTS_N" 'BEGIN { for (i = 1; i <= n; i++) printf "Agent%d:+9198%08d\n", i, i }')
printf '%s\n' "$agents" >"$T/agents.txt"
API_KEYS=$KEY PORT=$PB HTTP_BIND=127.0.0.1 DATA_DIR="$T/svc" LOG_LEVEL=warn CALL_HOURS=always \
    EXOTEL_BASE_URL="http://127.0.0.1:$PA/sandbox/exotel" EXOTEL_RATE_LIMIT_CALLS=100000 \
    EXOTEL_RATE_LIMIT_WINDOW_MS=1000 EXOTEL_CALL_DELAY_MS=0 AGENTS_FILE="$T/agents.txt" \
    MAX_CALLS_PER_NUMBER_PER_DAY=0 \
    BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" \
    BUS_CALL_SCHEDULER_PUB="ipc://$T/s.ipc" BUS_CALL_SCHEDULER_REPLAY="ipc://$T/sr.ipc" \
    BUS_DIALER_PUB="ipc://$T/d.ipc" BUS_DIALER_REPLAY="ipc://$T/dr.ipc" \
    "$LEADBUS" --target=ingest,call-scheduler,dialer >"$T/svc.log" 2>&1 &
wait_url "http://127.0.0.1:$PB/readyz"

# Post at RATE/s (one request every 1000/RATE ms, not waiting for answers), keeping each lead's
# send time; then read the sandbox's arrival time of each lead's connect (CustomField = call id).
URL="http://127.0.0.1:$PB/leads" SB="http://127.0.0.1:$PA" KEY=$KEY N=$N RATE=$RATE node --input-type=module -e '
const {URL: url, SB: sb, KEY: key} = process.env, n = +process.env.N, rate = +process.env.RATE;
const sent = new Map(), pending = [];
const t0 = Date.now();
for (let i = 0; i < n; i++) {
  const due = t0 + (i * 1000) / rate;
  await new Promise(r => setTimeout(r, Math.max(0, due - Date.now())));
  const at = Date.now();
  pending.push(fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-API-Key": key},
    body: JSON.stringify({name: "Bench " + i, phone: "+9197" + String(10000000 + i).slice(-8)})})
    .then(r => r.json()).then(j => sent.set("call_" + j.leadId, at)));
}
await Promise.all(pending);
const seen = new Map(), deadline = Date.now() + 60000;
while (seen.size < n && Date.now() < deadline) {
  const log = await (await fetch(sb + "/sandbox/requests?api=exotel")).json();
  for (const r of log.requests || log) {
    const m = /CustomField=([A-Za-z0-9_]+)/.exec(r.summary || "");
    if (r.method === "POST" && m && sent.has(m[1]) && !seen.has(m[1])) seen.set(m[1], r.ts);
  }
  if (seen.size < n) await new Promise(r => setTimeout(r, 500));
}
const d = [...seen].map(([c, ts]) => ts - sent.get(c)).sort((a, b) => a - b);
const p = q => d[Math.min(d.length - 1, Math.ceil(d.length * q) - 1)];
console.log(`${n} leads at ${rate}/s: ${d.length} rang an agent; POST -> agent ringing p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${d[d.length - 1]} ms`);
'
echo "waits for a free agent: $(grep -c 'No agent free' "$T/svc.log" || true) gave up; agents $AGENTS_N, ring $RING_MS ms"
