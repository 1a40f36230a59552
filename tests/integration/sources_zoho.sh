#!/usr/bin/env bash
# Leads created in Zoho CRM itself (issue 21), against the sandbox: a lead typed into the
# simulated Zoho reaches leadbus through the workflow rule's webhook (POST /sources/zoho), is
# called about EXOTEL_CALL_DELAY_MS later, and its outcome (a note, and a Calls record for the
# connected call) lands on that same Zoho record; no second Leads record is made (zoho-sync links,
# never upserts it). A redelivery creates nothing; a wrong or missing secret gets 401 and stores
# nothing; a record leadbus created itself (it carries Leadbus_Id) is ignored; a SIGKILL right
# after the acknowledgement loses nothing and duplicates nothing. The sandbox runs in its own
# process; ingest, zoho-sync, call-scheduler and dialer in another.
. "$(dirname "$0")/calls_lib.sh"
ZO="$SBURL/sandbox/zoho"
export EXOTEL_CALL_DELAY_MS=300 ZOHO_ACCOUNTS_URL=$ZO ZOHO_API_DOMAIN=$ZO ZOHO_TIMEOUT_MS=2000 \
    BUS_ZOHO_SYNC_PUB="ipc://$T/z.ipc" BUS_ZOHO_SYNC_REPLAY="ipc://$T/zr.ipc"
start_sandbox
start_all() {
    start svc env "$@" "$LEADBUS" --target=ingest,zoho-sync,call-scheduler,dialer
    SVC=$LAST_PID
    wait_for 15 "ingest, zoho-sync, call-scheduler and dialer" curl -fsS "$SVC_URL/readyz"
}
start_all
q() { sqlite3 "$T/svc/ingest.db" "$1"; }
qz() { sqlite3 "$T/svc/zoho-sync.db" "$1"; }
# ui_lead JSON: a lead typed into the simulated Zoho, and its webhooks; prints the sandbox's answer
ui_lead() { curl -sS -X POST "$ZO/ui/Leads" -H 'Content-Type: application/json' -d "$1"; }
zid_of() { grep -o '"id":"[0-9]*"' <<<"$1" | grep -o '[0-9][0-9]*'; }
lead_of() { q "SELECT lead_id FROM source_refs WHERE source = 'zoho' AND ref = '$1'"; }
records() { curl -s "$ZO/records?module=$1"; }
leads_in_zoho() { records Leads | jq '.data | length'; }
# on_record MODULE ZID: how many records of MODULE hang on the Leads record ZID
on_record() { records "$1" | jq --arg z "$2" '[.data[] | select(.Parent_Record_Id == $z)] | length'; }
has_on_record() { [ "$(on_record "$1" "$2")" -ge 1 ]; }
done_with() { call_is "$1" "\"state\":\"done\".*\"status\":\"$2\""; }
upserts() { curl -s "$SBURL/sandbox/requests?api=zoho" | grep -c 'Leads/upsert' || true; }
WH="\"webhook\":\"$SVC_URL/sources/zoho\""

# --- a lead typed into Zoho, its webhook delivered twice: one lead, linked, called, outcome on it
out=$(ui_lead "{\"record\":{\"First_Name\":\"Ravi\",\"Last_Name\":\"Kumar\",\"Phone\":\"+919800000210\",\"Email\":\"ravi@example.com\",\"Lead_Source\":\"Trade Show\"},$WH,\"deliveries\":2}")
[[ "$out" == *'"statuses":[202,200]'* ]] || fail "webhook deliveries: $out"
Z1=$(zid_of "$out")
L1=$(lead_of "$Z1")
[ -n "$L1" ] || fail "no lead for Zoho record $Z1: $(q 'SELECT * FROM source_refs')"
wait_for 20 "the Zoho lead to be called" done_with "call_$L1" completed
[ "$(connects_of "call_$L1")" -eq 1 ] || fail "call_$L1 placed $(connects_of "call_$L1") times"
first_connect=$(connect_log | awk -v c="call_$L1" '$2 == c {print $1; exit}')
received=$(q "SELECT received_ms FROM leads WHERE id = '$L1'")
delay=$((first_connect - received))
[ "$delay" -ge "$EXOTEL_CALL_DELAY_MS" ] && [ "$delay" -lt $((EXOTEL_CALL_DELAY_MS + 5000)) ] ||
    fail "called $delay ms after it arrived (EXOTEL_CALL_DELAY_MS=$EXOTEL_CALL_DELAY_MS)"
wait_for 20 "the outcome's note on Zoho record $Z1" has_on_record Notes "$Z1"
wait_for 20 "the Calls record on Zoho record $Z1" has_on_record Calls "$Z1"
[ "$(leads_in_zoho)" -eq 1 ] || fail "a second Leads record: $(records Leads)"
[ "$(upserts)" -eq 0 ] || fail "zoho-sync upserted a lead that came from Zoho"
[ "$(qz "SELECT state || ' ' || zoho_id FROM zoho_leads WHERE lead_id = '$L1'")" = "synced $Z1" ] ||
    fail "zoho-sync's row: $(qz "SELECT * FROM zoho_leads")"
[ "$(q "SELECT count(*) FROM leads")" = 1 ] || fail "the redelivery stored a lead"
echo "zoho: a lead made in Zoho ($Z1) became one lead ($L1), called $delay ms after it arrived; note and Calls record on that record, no second record"

# --- a redelivery later: the same lead, nothing new
out=$(ui_lead "{\"id\":\"$Z1\",$WH}")
[[ "$out" == *'"statuses":[200]'* ]] || fail "redelivery: $out"
[ "$(q "SELECT count(*) FROM source_refs WHERE source = 'zoho'")" = 1 ] || fail "refs after the redelivery"

# --- a wrong or missing secret: 401, nothing stored
out=$(ui_lead "{\"record\":{\"Last_Name\":\"Forged\",\"Phone\":\"+919800000220\"},$WH,\"secret\":\"bad\"}")
[[ "$out" == *'"statuses":[401]'* ]] || fail "bad secret: $out"
Zbad=$(zid_of "$out")
out=$(ui_lead "{\"id\":\"$Zbad\",$WH,\"secret\":\"none\"}")
[[ "$out" == *'"statuses":[401]'* ]] || fail "no secret: $out"
[ -z "$(lead_of "$Zbad")" ] || fail "a refused webhook stored a lead"
[ "$(q "SELECT count(*) FROM leads")" = 1 ] || fail "a refused webhook stored a lead"
curl -s "$SVC_URL/metrics" | grep 'leadbus_source_requests_total{source="zoho",result="bad_secret"} 2' >/dev/null ||
    fail "bad secrets not counted"
echo "zoho: a redelivery answered with the same lead; a wrong and a missing secret 401, nothing stored"

# --- a record leadbus itself created (it carries Leadbus_Id): ignored, no loop
out=$(ui_lead "{\"record\":{\"Last_Name\":\"Own\",\"Phone\":\"+919800000230\",\"Leadbus_Id\":\"ld_0000000000000000001\"},$WH}")
[[ "$out" == *'"statuses":[200]'* ]] || fail "own record: $out"
[ -z "$(lead_of "$(zid_of "$out")")" ] || fail "leadbus's own record became a lead"
# and a lead posted to leadbus comes back through the webhook as that: ignored
posted=$(post_lead "Web Lead" 9800000240)
synced() { [ -n "$(qz "SELECT zoho_id FROM zoho_leads WHERE lead_id = '$posted' AND state = 'synced'")" ]; }
wait_for 20 "the posted lead in Zoho" synced
Zown=$(qz "SELECT zoho_id FROM zoho_leads WHERE lead_id = '$posted'")
out=$(ui_lead "{\"id\":\"$Zown\",$WH}")
[[ "$out" == *'"statuses":[200]'* ]] || fail "posted lead's webhook: $out"
[ -z "$(lead_of "$Zown")" ] || fail "a lead leadbus pushed came back as a new lead"
[ "$(q "SELECT count(*) FROM leads")" = 2 ] || fail "leads: $(q 'SELECT id, source FROM leads')"
echo "zoho: records leadbus created (Leadbus_Id set) ignored"

# --- SIGKILL right after the acknowledgement: nothing lost, nothing twice
out=$(ui_lead "{\"record\":{\"Last_Name\":\"Crash\",\"Phone\":\"+919800000250\"},$WH}")
kill -9 "$SVC"
wait_pid 10 "$SVC" || true
[[ "$out" == *'"statuses":[202]'* ]] || fail "delivery before the SIGKILL: $out"
Z2=$(zid_of "$out")
L2=$(lead_of "$Z2")
[ -n "$L2" ] || fail "the acknowledged lead is not on disk"
start_all
out=$(ui_lead "{\"id\":\"$Z2\",$WH}")
[[ "$out" == *'"statuses":[200]'* ]] || fail "redelivery after the restart: $out"
wait_for 20 "the crashed lead to be called" done_with "call_$L2" completed
wait_for 20 "the crashed lead's note on its record" has_on_record Notes "$Z2"
[ "$(connects_of "call_$L2")" -eq 1 ] || fail "call_$L2 placed $(connects_of "call_$L2") times"
[ "$(on_record Notes "$Z2")" -eq 1 ] || fail "notes on $Z2: $(on_record Notes "$Z2")"
[ "$(upserts)" -eq 1 ] || fail "upserts: $(upserts) (only the posted lead's)"
echo "zoho: SIGKILL after the 202: one lead, linked, called once, one note"

# --- the event stream: each Zoho record once, as a zoho lead; no phone or secret in the logs
timeout 30 "$LEADBUS" tap --count=3 "$BUS_INGEST_PUB,$BUS_INGEST_REPLAY" >"$T/events"
for z in "$Z1" "$Z2"; do
    [ "$(grep -c "\"source_ref\":\"$z\"" "$T/events")" -eq 1 ] || fail "lead.created for $z: $(cat "$T/events")"
done
grep -q '"source":"zoho".*"extra":"{\\"zoho_lead_source\\":\\"Trade Show\\"}".*"via":"zoho"' "$T/events" ||
    fail "zoho lead fields: $(cat "$T/events")"
if grep -q "9800000210\|9800000250\|sandbox-zoho-webhook-secret" "$T"/svc.log; then
    fail "a phone number or the secret reached the log"
fi
stop_svc

# --- the Notifications API: zoho-sync enables a watch channel for Leads.create and renews it before
# channel_expiry; a notification carries ids only: the record is fetched (GET Leads?ids=&fields=)
# and handed to ingest's /sources/zoho, so it is the same lead, linked and called
start_all ZOHO_NOTIFY_URL="$SVC_URL/sources/zoho/notify" ZOHO_NOTIFY_TTL_S=3 ZOHO_NOTIFY_RENEW_S=2
zreq() { curl -s "$SBURL/sandbox/requests?api=zoho" | { grep -o "\"method\":\"$1\",\"path\":\"[^\"]*$2\"" || true; } | wc -l; }
at_least_req() { [ "$(zreq "$1" "$2")" -ge "$3" ]; }
wait_for 10 "the watch channel enabled (POST actions/watch)" at_least_req POST /actions/watch 1
wait_for 10 "the channel renewed before it expires (PUT actions/watch)" at_least_req PUT /actions/watch 2
channel_up() { curl -s "$SVC_URL/readyz" | grep -v 'Zoho notification channel' | grep '"status"'; }
wait_for 5 "/readyz without a degraded channel" channel_up
gets0=$(zreq GET /Leads)
out=$(ui_lead '{"record":{"First_Name":"Nita","Last_Name":"Shah","Phone":"+919800000260","Leadbus_Id":""},"notify_deliveries":2}')
[[ "$out" == *'"statuses":[]'*'"notified":[200,200]'* ]] || fail "notifications: $out"
Z3=$(zid_of "$out")
has_lead() { [ -n "$(lead_of "$1")" ]; }
wait_for 15 "the notified lead" has_lead "$Z3"
L3=$(lead_of "$Z3")
wait_for 20 "the notified lead to be called" done_with "call_$L3" completed
wait_for 20 "the notified lead's note on its record" has_on_record Notes "$Z3"
[ "$(connects_of "call_$L3")" -eq 1 ] || fail "call_$L3 placed $(connects_of "call_$L3") times"
[ $(($(zreq GET /Leads) - gets0)) -eq 1 ] || fail "record GETs: $(($(zreq GET /Leads) - gets0)) (one expected)"
[ "$(qz "SELECT state FROM zoho_notified WHERE zoho_id = '$Z3'")" = done ] || fail "zoho_notified: $(qz 'SELECT * FROM zoho_notified')"
[ "$(upserts)" -eq 1 ] || fail "upserts: $(upserts)"
echo "zoho notifications: channel enabled and renewed; a notification sent twice: one GET, one lead ($L3), called, note on $Z3"

# --- a wrong or missing token: 401, nothing recorded
for mode in bad none; do
    out=$(ui_lead "{\"record\":{\"Last_Name\":\"Forged\",\"Phone\":\"+919800000270\"},\"notify_token\":\"$mode\"}")
    [[ "$out" == *'"notified":[401]'* ]] || fail "notification with a $mode token: $out"
    [ "$(qz "SELECT count(*) FROM zoho_notified WHERE zoho_id = '$(zid_of "$out")'")" = 0 ] ||
        fail "a refused notification was recorded"
done
echo "zoho notifications: a wrong and a missing token 401, nothing recorded"

# --- SIGKILL of zoho-sync between the acknowledgement and the fetch (Zoho down meanwhile)
curl -fsS -X POST "$SBURL/sandbox/faults" -d 'zoho.down_ms=60000' >/dev/null
out=$(ui_lead '{"record":{"Last_Name":"Crash","Phone":"+919800000280"}}')
[[ "$out" == *'"notified":[200]'* ]] || fail "notification before the crash: $out"
Z4=$(zid_of "$out")
tried() { [ "$(qz "SELECT tries FROM zoho_notified WHERE zoho_id = '$Z4'")" -ge 1 ]; }
wait_for 10 "a failed fetch of $Z4" tried
kill -9 "$SVC"
wait_pid 10 "$SVC" || true
[ "$(qz "SELECT state FROM zoho_notified WHERE zoho_id = '$Z4'")" = pending ] || fail "not pending after the SIGKILL"
curl -fsS -X POST "$SBURL/sandbox/faults" -d 'reset' >/dev/null
start_all ZOHO_NOTIFY_URL="$SVC_URL/sources/zoho/notify" ZOHO_NOTIFY_TTL_S=3 ZOHO_NOTIFY_RENEW_S=2
wait_for 20 "the crashed notification's lead" has_lead "$Z4"
L4=$(lead_of "$Z4")
wait_for 20 "the crashed notification's lead to be called" done_with "call_$L4" completed
wait_for 20 "its note on the record" has_on_record Notes "$Z4"
[ "$(connects_of "call_$L4")" -eq 1 ] || fail "call_$L4 placed $(connects_of "call_$L4") times"
[ "$(q "SELECT count(*) FROM source_refs WHERE ref = '$Z4'")" = 1 ] || fail "refs of $Z4"
if grep -q "$(sqlite3 "$T/svc/zoho-sync.db" 'SELECT token FROM zoho_channel')" "$T"/svc.log; then
    fail "the channel token reached the log"
fi
stop_svc
echo "zoho notifications: SIGKILL after the 200 with Zoho down: fetched after the restart, one lead, called once"
echo "sources_zoho: ok"
