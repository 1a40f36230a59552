#!/usr/bin/env bash
# stats against a scripted run with known sandbox outcomes, the stats process
# SIGKILLed and restarted mid-run: /exotel/stats equals what happened (and the
# sandbox's own records), the lead timeline tells one lead's story with its
# phone masked, the API key guards what it should; every target's /metrics
# passes `promtool check metrics`; the dashboard, opened in headless Chromium,
# shows the counts /exotel/stats reports, with no console errors (a
# screenshot is kept in $BUILD/artifacts/).
. "$(dirname "$0")/calls_lib.sh"
PC=$(free_port)
STATS_URL="http://127.0.0.1:$PC"
start_sandbox SANDBOX_ZOHO_MINT_LIMIT=100
export EXOTEL_CALL_DELAY_MS=300 EXOTEL_MAX_RETRIES=2 EXOTEL_RETRY_DELAYS_MS=300 \
    ZOHO_ACCOUNTS_URL="$SBURL/sandbox/zoho" ZOHO_API_DOMAIN="$SBURL/sandbox/zoho" \
    BUS_ZOHO_SYNC_PUB="ipc://$T/z.ipc" BUS_ZOHO_SYNC_REPLAY="ipc://$T/zr.ipc"
start svc "$LEADBUS" --target=ingest,zoho-sync,call-scheduler,dialer
SVC=$LAST_PID
wait_for 15 "the services" curl -fsS "$SVC_URL/readyz"
start_stats() {
    start stats env PORT=$PC DATA_DIR="$T/stats" "$@" "$LEADBUS" --target=stats
    STATS=$LAST_PID
    wait_for 15 "stats" curl -fsS "$STATS_URL/readyz"
}
start_stats

# 40 phones, ten of each last digit (0 completed, 1 busy, 2 no-answer, 3 failed), five leads
# without a phone, two repeats of a phone already called: a known story.
post() {
    curl -s -o /dev/null -w '%{http_code}' -X POST "$SVC_URL/leads" -H "Content-Type: application/json" \
        -H "X-API-Key: $KEY" -d "$1" | grep -c 202 >/dev/null || fail "post $1"
}
for i in $(seq 0 39); do
    post "{\"name\":\"Lead $i\",\"phone\":\"93000$(printf '%04d' $i)$((i % 4))\"}"
    if [ $i -eq 20 ]; then
        kill -9 "$STATS"; wait "$STATS" 2>/dev/null || true
        echo "SIGKILLed stats after 21 leads"
        start_stats
    fi
done
for i in 1 2 3 4 5; do post "{\"name\":\"Email $i\",\"email\":\"e$i@example.com\"}"; done
post '{"name":"Again","phone":"9300000000"}'
post '{"name":"Again Too","phone":"9300000011"}'

stats() { curl -s "$STATS_URL/exotel/stats"; }
settled() { stats | grep -c '"pending":0,"total":47,.*"unknown":0},"attempts":60,.*"synced":47' >/dev/null; }
wait_for 60 "stats to settle on 47 calls and 60 attempts" settled
kill -9 "$STATS"; wait "$STATS" 2>/dev/null || true
start_stats # and once more: a restart must not count anything twice
wait_for 15 "stats after a restart" settled
s=$(stats)
echo "stats: $s"
for want in '"byStatus":{"pending":0,"success":40,"failed":0,"skipped":7}' \
    '"outcomes":{"completed":10,"busy":20,"no-answer":20,"failed":10,"canceled":0,"dnd":0,"rejected":0,"failed-api":0,"unknown":0}' \
    '"leads":{"received":47,"synced":47,"syncFailed":0,"syncBacklog":0,"outcomeSyncFailed":0}'; do
    grep -qF "$want" <<<"$s" || fail "expected $want"
done
# ... and agrees with the sandbox's own records
[ "$(connect_count)" -eq 60 ] || fail "the sandbox saw $(connect_count) calls, stats 60 attempts"
zoho=$(curl -s "$SBURL/sandbox/zoho/records?module=Leads" | grep -o '"Leadbus_Id"' | wc -l)
[ "$zoho" -eq 47 ] || fail "Zoho holds $zoho leads, stats says 47 synced"

# --- one lead's timeline, behind the key, phone masked
busy=$(curl -s -H "X-API-Key: $KEY" "$STATS_URL/leads?limit=500" |
    grep -o '"leadId":"ld_[0-9a-f]*","receivedAt":[0-9]*,"name":"Lead 1"' | grep -o 'ld_[0-9a-f]*')
[ -n "$busy" ] || fail "Lead 1 not in GET /leads"
tl=$(curl -s -H "X-API-Key: $KEY" "$STATS_URL/leads/$busy")
for ev in '"service":"ingest","event":"lead.created"' '"service":"zoho-sync","event":"lead.synced"' \
    '"event":"call.scheduled"' '"event":"call.due"' '"status":"busy"' '"attempt":2' '"call":"success"'; do
    grep -qF "$ev" <<<"$tl" || fail "timeline lacks $ev: $tl"
done
[ "$(grep -o '"event":"call.due"' <<<"$tl" | wc -l)" -eq 2 ] || fail "timeline: two attempts expected"
grep -q '9300000011' <<<"$tl" && fail "the timeline shows a phone number unmasked"
grep -q '"phone":"+91\*\*\*11"' <<<"$tl" || fail "masked phone: $tl"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "$STATS_URL/leads/$busy")" = 401 ] || fail "timeline without a key"
[ "$(code -H "X-API-Key: $KEY" "$STATS_URL/leads/ld_nope")" = 404 ] || fail "unknown lead"
[ "$(code "$STATS_URL/leads")" = 401 ] || fail "lead list without a key"
[ "$(code "$STATS_URL/exotel/stats")" = 200 ] || fail "stats are open by default, as in the original"
series=$(curl -s "$STATS_URL/exotel/stats/series?minutes=10")
[ "$(grep -o '"completed":[0-9]*' <<<"$series" | cut -d: -f2 | paste -sd+ | awk -F+ '{s=0; for (i=1;i<=NF;i++) s+=$i; print s}')" -eq 10 ] ||
    fail "per-minute series: $series"

# --- /metrics of every process passes promtool
for url in "$SBURL" "$SVC_URL" "$STATS_URL"; do
    curl -fsS "$url/metrics" >"$T/metrics.txt"
    promtool check metrics <"$T/metrics.txt" || fail "promtool rejects $url/metrics"
done
m=$(curl -s "$SVC_URL/metrics")
for series_name in 'leadbus_http_requests_total{route="/leads",method="POST",code="202"} 47' \
    'leadbus_dispatch_lateness_seconds_count 60' 'leadbus_calls{state="pending"} 0' \
    'leadbus_bus_events_published_total{publisher="dialer",topic="call.status"}' \
    'leadbus_upstream_requests_total{api="exotel",result="2xx"} 60'; do
    grep -qF "$series_name" <<<"$m" || fail "metrics lack $series_name"
done
echo "promtool accepts the metrics of sandbox, services and stats"

# --- the dashboard in headless Chromium shows what /exotel/stats says, without console errors
CHROME=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --user-data-dir="$T/chrome" --virtual-time-budget=5000)
"${CHROME[@]}" --enable-logging=stderr --v=0 --dump-dom "$STATS_URL/" >"$T/dom.html" 2>"$T/chrome.log" ||
    fail "chromium failed: $(tail -5 "$T/chrome.log")"
for id in pending total success failed skipped attempts received synced; do
    want=$(grep -o "\"$id\":[0-9][0-9]*" <<<"$s" | head -1 | cut -d: -f2)
    grep -q "id=\"$id\">$want<" "$T/dom.html" || fail "the dashboard's $id is not $want"
done
grep -q '<rect' "$T/dom.html" || fail "the chart drew no bars"
# issue 20: outcome tiles, connect rate, speed to lead, calling hours, agents' empty state, time axis
for o in completed no-answer busy; do
    want=$(grep -o "\"outcomes\":{[^}]*" <<<"$s" | grep -o "\"$o\":[0-9]*" | cut -d: -f2)
    grep -q "id=\"oc-$o\">$want<" "$T/dom.html" || fail "the dashboard's $o tile is not $want"
done
f=$(grep -o "\"outcomes\":{[^}]*" <<<"$s" | grep -o '"failed":[0-9]*\|"failed-api":[0-9]*' | cut -d: -f2 | paste -sd+ | bc)
grep -q "id=\"oc-failed\">$f<" "$T/dom.html" || fail "the dashboard's failed tile is not $f"
rate=$(node -e 'const s = JSON.parse(process.argv[1]).stats; console.log(Math.round(s.connectRate * 100) + "%")' "$s")
grep -q "id=\"connectRate\">$rate<" "$T/dom.html" || fail "connect rate is not $rate"
grep -q 'id="stl-attempt-median">[0-9.]* s<' "$T/dom.html" || fail "no speed-to-lead median"
grep -q 'id="stl-connected-p90">[0-9.]* s<' "$T/dom.html" || fail "no speed-to-lead p90"
grep -q 'class="pill calling" id="callingState">calling now<\|id="callingState" class="pill calling">calling now<' "$T/dom.html" ||
    fail "calling-hours state: $(grep -o '<span[^>]*callingState[^<]*' "$T/dom.html")"
grep -q 'id="agentsEmpty" class="muted">No agents' "$T/dom.html" || fail "no empty state for agents"
[ "$(grep -o '<div class="axis" id="axis">.*</div>' "$T/dom.html" | grep -o '<span' | wc -l)" -ge 6 ] ||
    fail "no time axis under the chart"
grep -q 'times in Asia/Kolkata' "$T/dom.html" || fail "the page does not name its time zone"
if grep -i 'CONSOLE' "$T/chrome.log" | grep -iq 'error\|uncaught'; then
    fail "console errors: $(grep -i CONSOLE "$T/chrome.log")"
fi
mkdir -p "$BUILD/artifacts"
"${CHROME[@]}" --screenshot="$BUILD/artifacts/dashboard.png" --window-size=1100,900 "$STATS_URL/" \
    >/dev/null 2>&1 || fail "screenshot"
"${CHROME[@]}" --screenshot="$BUILD/artifacts/dashboard-phone.png" --window-size=390,844 "$STATS_URL/" \
    >/dev/null 2>&1 || fail "phone screenshot"
echo "dashboard shows the same counts as /exotel/stats; screenshots in $BUILD/artifacts/"

# --- STATS_REQUIRE_KEY closes the aggregates too
kill -TERM "$STATS"; wait_pid 15 "$STATS"
start_stats STATS_REQUIRE_KEY=true
[ "$(code "$STATS_URL/exotel/stats")" = 401 ] || fail "STATS_REQUIRE_KEY=true left stats open"
[ "$(code -H "X-API-Key: $KEY" "$STATS_URL/exotel/stats")" = 200 ] || fail "stats with the key"
kill -TERM "$STATS" "$SVC"; wait_pid 15 "$STATS"; wait_pid 15 "$SVC"
