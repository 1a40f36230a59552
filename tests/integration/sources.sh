#!/usr/bin/env bash
# Lead sources (issue 21) against the sandbox: a signed webhook creates one lead (a redelivery
# none, a bad or missing signature 401 and nothing stored); Meta's handshake; a Meta delivery
# with a valid signature creates one lead that is then called like a web lead, a redelivery
# none, a bad signature 401 and nothing stored; a SIGKILL of ingest between the acknowledgement
# and the Graph fetch loses nothing and duplicates nothing; a lead Graph never gives is
# dead-lettered visibly. The sandbox runs in its own process (its Meta and Exotel outlive the
# service's SIGKILL); ingest, call-scheduler and dialer in another.
. "$(dirname "$0")/calls_lib.sh"
HOOK_SECRET=acme-webhook-secret-0123456789
export EXOTEL_CALL_DELAY_MS=300 META_GRAPH_URL="$SBURL/sandbox/meta" META_RETRY_BASE_MS=200 \
    META_RETRY_MAX_MS=400 META_MAX_TRIES=3 SOURCE_ACME_SECRET=$HOOK_SECRET \
    SOURCE_ACME_MAP='name=$.contact.full_name,phone=$.contact.phone,email=$.contact.email,extra.campaign=$.campaign' \
    SOURCE_ACME_ID='$.event.id' META_FORM_300000000000009_MAP='whatsapp_number=phone,budget=extra.inr'
start_sandbox
start_svc
DB="$T/svc/ingest.db"
q() { sqlite3 "$DB" "$1"; }

# --- a signed webhook
hook_body() { echo "{\"event\":{\"id\":\"$1\"},\"contact\":{\"full_name\":\"Hook Lead\",\"phone\":\"$2\",\"email\":\"hook@example.com\"},\"campaign\":\"winter\"}"; }
hmac() { printf '%s' "$2" | openssl dgst -sha256 -hmac "$1" | awk '{print $NF}'; }
post_hook() { # post_hook BODY [curl args...]: prints "CODE BODY"
    local body=$1; shift
    curl -sS -o "$T/resp" -w '%{http_code}' -X POST "$SVC_URL/sources/webhook/acme" \
        -H 'Content-Type: application/json' "$@" --data-binary "$body"
    echo " $(cat "$T/resp")"
}
B=$(hook_body evt-1 9800000120)
first=$(post_hook "$B" -H "X-Signature-256: sha256=$(hmac $HOOK_SECRET "$B")")
[[ "$first" == "202 "* ]] || fail "signed webhook: $first"
hook_lead=$(grep -o 'ld_[0-9a-f]*' <<<"$first")
again=$(post_hook "$B" -H "X-Signature-256: sha256=$(hmac $HOOK_SECRET "$B")")
[[ "$again" == "200 "*"\"leadId\":\"$hook_lead\""*'"duplicate":true'* ]] || fail "webhook redelivery: $again"
B2=$(hook_body evt-2 9800000130)
out=$(post_hook "$B2" -H "X-Signature-256: sha256=$(hmac wrong-secret-0123456789 "$B2")")
[[ "$out" == "401 "*bad_signature* ]] || fail "webhook, wrong signature: $out"
out=$(post_hook "$B2")
[[ "$out" == "401 "* ]] || fail "webhook, no signature: $out"
out=$(post_hook "$B2" -H "X-Signature-256: sha256=$(hmac $HOOK_SECRET "$B2")x")
[[ "$out" == "401 "* ]] || fail "webhook, malformed signature: $out"
out=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$SVC_URL/sources/webhook/nobody" -d '{}')
[ "$out" = 404 ] || fail "unknown webhook source: $out"
[ "$(q "SELECT count(*) FROM source_refs WHERE source = 'acme'")" = 1 ] || fail "webhook refs: $(q 'SELECT * FROM source_refs')"
[ "$(q "SELECT count(*) FROM leads")" = 1 ] || fail "a refused webhook stored a lead"
done_with() { call_is "$1" "\"state\":\"done\".*\"status\":\"$2\""; }
wait_for 15 "the webhook lead to be called" done_with "call_$hook_lead" completed
echo "webhook: one lead ($hook_lead), called; redelivery 200 with the same id; bad, missing, malformed signature 401"

# --- Meta: the verification handshake
out=$(curl -s -w ' %{http_code}' "$SVC_URL/sources/meta?hub.mode=subscribe&hub.verify_token=sandbox-verify-token&hub.challenge=1158201444")
[ "$out" = "1158201444 200" ] || fail "handshake: $out"
out=$(curl -s -o /dev/null -w '%{http_code}' "$SVC_URL/sources/meta?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1")
[ "$out" = 403 ] || fail "handshake with a wrong token: $out"

# --- Meta: a lead filled in on a form, delivered twice (Meta redelivers), fetched once, called
sb_meta() { curl -sS -X POST "$SBURL/sandbox/meta/leads" -H 'Content-Type: application/json' -d "$1"; }
LEAD='"lead":{"full_name":"Meta Lead","phone_number":"+919800000110","email":"meta@example.com","budget":"10k"}'
out=$(sb_meta "{$LEAD,\"deliver_to\":\"$SVC_URL/sources/meta\",\"deliveries\":2}")
[[ "$out" == *'"statuses":[200,200]'* ]] || fail "meta deliveries: $out"
L1=$(grep -o '"leadgen_id":"[0-9]*"' <<<"$out" | grep -o '[0-9]*')
meta_lead_of() { q "SELECT lead_id FROM source_refs WHERE source = 'meta' AND ref = '$1'"; }
has_meta_lead() { [ -n "$(meta_lead_of "$1")" ]; }
wait_for 15 "the Meta lead to be fetched" has_meta_lead "$L1"
meta_lead=$(meta_lead_of "$L1")
wait_for 15 "the Meta lead to be called" done_with "call_$meta_lead" completed
out=$(sb_meta "{\"leadgen_id\":\"$L1\",\"deliver_to\":\"$SVC_URL/sources/meta\"}")
[[ "$out" == *'"statuses":[200]'* ]] || fail "meta redelivery: $out"
fetches() { curl -s "$SBURL/sandbox/requests?api=meta" | grep -o "\"method\":\"GET\",\"path\":\"[^\"]*/$1\"" | wc -l; }
[ "$(fetches "$L1")" -eq 1 ] || fail "lead $L1 fetched $(fetches "$L1") times"
[ "$(q "SELECT count(*) FROM source_refs WHERE source = 'meta'")" = 1 ] || fail "meta refs: $(q 'SELECT * FROM source_refs')"
[ "$(q "SELECT state FROM meta_leads WHERE leadgen_id = '$L1'")" = done ] || fail "meta_leads: $(q 'SELECT * FROM meta_leads')"
echo "meta: delivered twice and again, fetched once, one lead ($meta_lead), called"

# --- Meta: a form with its own questions (META_FORM_<id>_MAP)
out=$(sb_meta "{\"lead\":{\"full_name\":\"Form Lead\",\"whatsapp_number\":\"9800000150\",\"budget\":\"5k\"},\"form_id\":\"300000000000009\",\"deliver_to\":\"$SVC_URL/sources/meta\"}")
[[ "$out" == *'"statuses":[200]'* ]] || fail "meta delivery of the mapped form: $out"
L3=$(grep -o '"leadgen_id":"[0-9]*"' <<<"$out" | grep -o '[0-9]*')
wait_for 15 "the mapped form's lead" has_meta_lead "$L3"
wait_for 15 "the mapped form's lead to be called" done_with "call_$(meta_lead_of "$L3")" completed
echo "meta: a form's own question mapped to the phone (META_FORM_<id>_MAP), called"

# --- Meta: a bad or missing signature is refused and nothing is recorded
out=$(sb_meta "{$LEAD,\"deliver_to\":\"$SVC_URL/sources/meta\",\"signature\":\"bad\"}")
[[ "$out" == *'"statuses":[401]'* ]] || fail "meta, bad signature: $out"
Lbad=$(grep -o '"leadgen_id":"[0-9]*"' <<<"$out" | grep -o '[0-9]*')
out=$(sb_meta "{\"leadgen_id\":\"$Lbad\",\"deliver_to\":\"$SVC_URL/sources/meta\",\"signature\":\"none\"}")
[[ "$out" == *'"statuses":[401]'* ]] || fail "meta, no signature: $out"
[ "$(q "SELECT count(*) FROM meta_leads WHERE leadgen_id = '$Lbad'")" = 0 ] || fail "a refused delivery was recorded"
curl -s "$SVC_URL/metrics" | grep 'leadbus_source_requests_total{source="meta",result="bad_signature"} 2' >/dev/null ||
    fail "bad signatures not counted"

# --- Meta: SIGKILL between the acknowledgement and the fetch (Graph down meanwhile)
curl -fsS -X POST "$SBURL/sandbox/faults" -d 'meta.down_ms=60000' >/dev/null
out=$(sb_meta "{\"lead\":{\"full_name\":\"Crash Lead\",\"phone_number\":\"9800000140\"},\"deliver_to\":\"$SVC_URL/sources/meta\"}")
[[ "$out" == *'"statuses":[200]'* ]] || fail "meta delivery before the crash: $out"
L2=$(grep -o '"leadgen_id":"[0-9]*"' <<<"$out" | grep -o '[0-9]*')
tried() { [ "$(q "SELECT tries FROM meta_leads WHERE leadgen_id = '$L2'")" -ge 1 ]; }
wait_for 10 "a failed Graph fetch of $L2" tried
kill -9 "$SVC"; wait_pid 10 "$SVC" || true
[ "$(q "SELECT state FROM meta_leads WHERE leadgen_id = '$L2'")" = pending ] || fail "not pending after the SIGKILL"
curl -fsS -X POST "$SBURL/sandbox/faults" -d 'reset' >/dev/null
start_svc
wait_for 15 "the crashed Meta lead to arrive" has_meta_lead "$L2"
wait_for 15 "the crashed Meta lead to be called" done_with "call_$(meta_lead_of "$L2")" completed
echo "meta: SIGKILL after the 200, Graph down: fetched after the restart, one lead"

# --- Meta: a lead Graph does not know is dead-lettered after META_MAX_TRIES, visibly
D='{"object":"page","entry":[{"id":"1","time":1,"changes":[{"field":"leadgen","value":{"leadgen_id":"123456789","page_id":"1","form_id":"2"}}]}]}'
out=$(curl -s -w ' %{http_code}' -X POST "$SVC_URL/sources/meta" -H 'Content-Type: application/json' \
    -H "X-Hub-Signature-256: sha256=$(hmac sandbox-app-secret "$D")" --data-binary "$D")
[[ "$out" == *'"new":1'*" 200" ]] || fail "unknown leadgen delivery: $out"
failed() { curl -s -H "X-API-Key: $KEY" "$SVC_URL/sources/meta/failed" | grep '"leadgenId":"123456789".*"tries":3'; }
wait_for 15 "the unknown lead to be dead-lettered" failed
grep -q '\[ERROR\] ingest: Meta lead dead-lettered.*123456789' "$T/svc.log" || fail "no ERROR line for the dead letter"
dead_gauge() { curl -s "$SVC_URL/metrics" | grep 'leadbus_meta_leads{state="dead"} 1'; }
wait_for 5 "leadbus_meta_leads{state=\"dead\"} 1" dead_gauge # set at the end of the worker's round
out=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-API-Key: $KEY" "$SVC_URL/sources/meta/failed/123456789/retry")
[ "$out" = 202 ] || fail "retry of a dead letter: $out"
out=$(curl -s -o /dev/null -w '%{http_code}' "$SVC_URL/sources/meta/failed")
[ "$out" = 401 ] || fail "the dead-letter list without a key: $out"
echo "meta: an unknown leadgen id dead-lettered after 3 tries (ERROR, metric, GET /sources/meta/failed)"

# --- the event stream: each source reference exactly once; no phone number or secret in the logs
timeout 30 "$LEADBUS" tap --count=4 "$BUS_INGEST_PUB,$BUS_INGEST_REPLAY" >"$T/events"
for ref in evt-1 "$L1" "$L2" "$L3"; do
    [ "$(grep -c "\"source_ref\":\"$ref\"" "$T/events")" -eq 1 ] || fail "lead.created for $ref: $(cat "$T/events")"
done
grep -q '"source":"meta".*"extra":"{\\"budget\\":\\"10k\\"}","via":"meta"' "$T/events" || fail "meta lead fields: $(cat "$T/events")"
grep -q '"source":"acme".*"via":"webhook"' "$T/events" || fail "webhook lead fields"
grep -q '"phone_e164":"+919800000150".*"extra":"{\\"inr\\":\\"5k\\"}"' "$T/events" || fail "mapped form's fields"
if grep -q "9800000110\|9800000120\|9800000140\|9800000150\|sandbox-page-token\|$HOOK_SECRET" "$T"/svc.log; then
    fail "a phone number or a secret reached the log"
fi
kill -TERM "$SVC"; wait_pid 15 "$SVC"

# --- a page token Graph refuses (code 190): /readyz stays 200 and names it as degraded, ERROR once
start_svc META_VERIFY_TOKEN=sandbox-verify-token META_APP_SECRET=sandbox-app-secret META_PAGE_TOKEN=revoked-page-token
out=$(sb_meta "{\"lead\":{\"full_name\":\"Token Lead\",\"phone_number\":\"9800000160\"},\"deliver_to\":\"$SVC_URL/sources/meta\"}")
[[ "$out" == *'"statuses":[200]'* ]] || fail "meta delivery with a revoked token: $out"
degraded() { curl -s -w ' %{http_code}' "$SVC_URL/readyz" | grep '"degraded":\[[^]]*"ingest: Meta page token".* 200$'; }
wait_for 10 "/readyz to name the refused page token" degraded
[ "$(grep -c 'Graph API refuses META_PAGE_TOKEN (code 190)' "$T/svc.log")" -eq 1 ] || fail "the refused token is not one ERROR line"
if grep -q "revoked-page-token" "$T/svc.log"; then fail "the page token reached the log"; fi
kill -TERM "$SVC"; wait_pid 15 "$SVC"
echo "meta: a refused page token is one ERROR line and a degraded /readyz check"
echo "sources: ok"
