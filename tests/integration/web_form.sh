#!/usr/bin/env bash
# Collecting leads from a website, as a site owner would: services/ingest/form.js on a page of an
# allowed origin, driven in headless Chromium, posts one lead for a double click (one
# Idempotency-Key per submission); a page on another origin is refused by the browser (preflight
# 403, no lead). A form key cannot read leads (403); past FORM_RATE_LIMIT it gets 429 with
# Retry-After; the honeypot field is answered 202 and dropped; a number outside DIAL_COUNTRIES is
# stored, skipped with reason `country`, and never sent to Exotel.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$T"
command -v chromium >/dev/null || { echo "SKIP: chromium is not installed"; exit 77; }
(npm install --silent --no-audit --no-fund playwright-core@1 >"$T/npm.log" 2>&1) ||
    fail "npm install: $(tail -5 "$T/npm.log")"
P=$(free_port); GOOD=$(free_port); BAD=$(free_port)
OP=operator-key-0123456789abcdef FK=form-key-0123456789abcdef
LB="http://127.0.0.1:$P"
start all env PORT="$P" HTTP_BIND=127.0.0.1 DATA_DIR="$T/data" API_KEYS=$OP \
    FORM_KEYS="$FK@http://127.0.0.1:$GOOD" CORS_ALLOWED_ORIGINS="http://127.0.0.1:$GOOD" \
    FORM_RATE_LIMIT=3/60s FORM_HONEYPOT_FIELD=website_url DIAL_COUNTRIES=IN \
    CALL_HOURS=always EXOTEL_CALL_DELAY_MS=0 SANDBOX_RING_MS=100 "$LEADBUS" --target=all
wait_for 60 "leadbus" curl -fsS "$LB/readyz"
metric() { curl -s "$LB/metrics" | grep -F "$1" | awk '{print $2}' | head -1; }

# --- the browser: an allowed origin (double click), then another origin
mkdir -p "$BUILD/artifacts"
cp "$ROOT/tests/web/form_test.mjs" "$T/" # ESM resolves packages beside the script
out=$(LEADBUS=$LB FORM_KEY=$FK GOOD_PORT=$GOOD BAD_PORT=$BAD SHOTS="$BUILD/artifacts" \
    timeout 150 node "$T/form_test.mjs" 2>"$T/node.err") || fail "browser run: $(tail -20 "$T/node.err")"
echo "browser: $out"
grep -q '"allowed":"Thank you! We will call you shortly."' <<<"$out" || fail "the allowed page did not get its 202: $out"
grep -q '"pageErrors":\[\]' <<<"$out" || fail "errors in the page: $out"
grep -q '"refused":"Could not reach the server; please try again."' <<<"$out" || fail "the other origin was not refused: $out"
[ "$(metric 'leadbus_form_posts_total{result="accepted"}')" = 1 ] || fail "expected exactly one lead from the form: $(curl -s "$LB/metrics" | grep form_posts)"
posts=$(metric 'leadbus_http_requests_total{route="/leads",method="POST",code="202"}')
[ "${posts:-0}" -le 2 ] || fail "the double click sent $posts posts"
[ "$(metric 'leadbus_http_requests_total{route="preflight",method="OPTIONS",code="403"}')" -ge 1 ] ||
    fail "the other origin's preflight was not refused"
grep -q "Lead accepted.*via: 'form-1'" "$T/all.log" || fail "the lead does not record its form key"
echo "double click: one lead ($posts POST answered 202 with one Idempotency-Key); other origin refused"

# --- the answers' CORS headers: a 202 and an error, for the listed origin only
hdr=$(curl -s -D - -o /dev/null -X POST "$LB/leads" -H "Origin: http://127.0.0.1:$GOOD" -H "X-API-Key: $FK" \
    -H 'Content-Type: application/json' -d '{"name":"X"}')
grep -qi "^Access-Control-Allow-Origin: http://127.0.0.1:$GOOD" <<<"$hdr" && grep -qi '^Vary: Origin' <<<"$hdr" ||
    fail "an error answer without CORS headers: $hdr"
hdr=$(curl -s -D - -o /dev/null -X OPTIONS "$LB/leads" -H "Origin: http://127.0.0.1:$GOOD" \
    -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type,x-api-key,idempotency-key')
grep -q '^HTTP/1.1 204' <<<"$hdr" && grep -qi '^Access-Control-Allow-Headers: Content-Type, X-API-Key, Idempotency-Key' <<<"$hdr" ||
    fail "preflight: $hdr"
curl -s -D - -o /dev/null -X POST "$LB/leads" -H "Origin: http://evil.example" -H "X-API-Key: $OP" \
    -H 'Content-Type: application/json' -d '{"name":"X"}' | grep -ci '^Access-Control-Allow-Origin' >/dev/null &&
    fail "an unlisted origin got Access-Control-Allow-Origin"

# --- a form key opens POST /leads only, from its own origin
for route in "GET /leads" "GET /calls" "GET /zoho/failed" "DELETE /calls/call_x"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X "${route% *}" "$LB${route#* }" -H "X-API-Key: $FK")
    [ "$code" = 403 ] || fail "$route with a form key: $code"
done
code=$(curl -s -o "$T/r" -w '%{http_code}' -X POST "$LB/leads" -H "X-API-Key: $FK" -H "Origin: http://127.0.0.1:$BAD" \
    -H 'Content-Type: application/json' -d '{"name":"Elsewhere","phone":"9876500001"}')
[ "$code" = 403 ] && grep -q origin_not_allowed "$T/r" || fail "a bound form key from another origin: $code $(cat "$T/r")"

# --- the honeypot, then the rate limit (3 per 60 s per address and key; the form used 1, the error 1)
code=$(curl -s -o "$T/r" -w '%{http_code}' -X POST "$LB/leads" -H "X-API-Key: $FK" -H "Origin: http://127.0.0.1:$GOOD" \
    -H 'Content-Type: application/json' -d '{"name":"Bot","phone":"9876500002","website_url":"http://spam.example"}')
[ "$code" = 202 ] && [ "$(metric 'leadbus_form_posts_total{result="honeypot"}')" = 1 ] || fail "honeypot: $code $(cat "$T/r")"
hdr=$(curl -s -D - -o "$T/r" -X POST "$LB/leads" -H "X-API-Key: $FK" -H "Origin: http://127.0.0.1:$GOOD" \
    -H 'Content-Type: application/json' -d '{"name":"Too Many","phone":"9876500003"}')
grep -q '^HTTP/1.1 429' <<<"$hdr" && grep -qi '^Retry-After: [1-9]' <<<"$hdr" && grep -q rate_limited "$T/r" ||
    fail "the 4th form post in a minute: $hdr $(cat "$T/r")"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$LB/leads" -H "X-API-Key: $OP" \
    -H 'Content-Type: application/json' -d '{"name":"Operator","email":"op@example.com"}')
[ "$code" = 202 ] || fail "the operator key is not limited: $code"
echo "form key: 403 on operator routes and from other origins, honeypot dropped, 429 with Retry-After"

# --- toll fraud: a number outside DIAL_COUNTRIES is stored and never dialled
us=$(curl -s -X POST "$LB/leads" -H "X-API-Key: $OP" -H 'Content-Type: application/json' \
    -d '{"name":"Far Away","phone":"+14155550123"}' | grep -o 'ld_[0-9a-f]*')
in=$(curl -s -X POST "$LB/leads" -H "X-API-Key: $OP" -H 'Content-Type: application/json' \
    -d '{"name":"Near By","phone":"9811122233"}' | grep -o 'ld_[0-9a-f]*')
[ -n "$us" ] && [ -n "$in" ] || fail "leads not accepted"
skipped() { curl -s -H "X-API-Key: $OP" "$LB/leads/$us" | grep -c '"reason":"country"' >/dev/null; }
wait_for 60 "the +1 lead's call skipped for its country" skipped
dialled() { curl -s "$LB/sandbox/requests?api=exotel" | grep -c '\*\*\*33' >/dev/null; }
wait_for 60 "the Indian lead dialled" dialled
curl -s "$LB/sandbox/requests?api=exotel" | grep -c '+14\*\*\*23' >/dev/null && fail "a number outside DIAL_COUNTRIES reached Exotel"
echo "DIAL_COUNTRIES=IN: +1 lead stored and skipped (country), +91 lead dialled"
