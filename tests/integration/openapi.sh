#!/usr/bin/env bash
# The OpenAPI contract: docs/openapi.json validates as OpenAPI 3.1 with a maintained validator
# (npm @seriousme/openapi-schema-validator), GET /openapi.json serves exactly that file, and the
# routes a real `leadbus --target=all` registers (logged at debug level) are the documented
# operations, no more, no fewer (SMS_ON on, so the SMS follow-up's callback route is served). /sandbox/... routes are the simulated vendors' APIs, documented by
# docs/api-conformance.md, and left out.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$T"
(npm install --silent --no-audit --no-fund @seriousme/openapi-schema-validator@2 >"$T/npm.log" 2>&1) ||
    fail "npm install: $(tail -5 "$T/npm.log")"
P=$(free_port)
start all env PORT="$P" HTTP_BIND=127.0.0.1 DATA_DIR="$T/data" API_KEYS=test-key-0123456789abcdef \
    LOG_LEVEL=debug CALL_HOURS=always SMS_ON=no-answer SMS_TEMPLATE='Hi {first_name}' \
    EXOTEL_SMS_SENDER=LBUSIN EXOTEL_DLT_ENTITY_ID=1 EXOTEL_DLT_TEMPLATE_ID=2 "$LEADBUS" --target=all
wait_for 20 "leadbus" curl -fsS "http://127.0.0.1:$P/readyz"
curl -fsS "http://127.0.0.1:$P/openapi.json" >"$T/served.json"
cmp -s "$T/served.json" "$ROOT/docs/openapi.json" || fail "GET /openapi.json is not docs/openapi.json"
grep -o "route { method: '[A-Z]*', pattern: '[^']*'" "$T/all.log" |
    sed -E "s/route \{ method: '([A-Z]*)', pattern: '([^']*)'/\1 \2/" | grep -v ' /sandbox/' | sort -u >"$T/routes"
[ "$(wc -l <"$T/routes")" -ge 15 ] || fail "too few routes logged: $(cat "$T/routes")"
cp "$ROOT/tests/web/openapi_check.mjs" "$T/" # ESM resolves packages beside the script
node "$T/openapi_check.mjs" "$ROOT/docs/openapi.json" <"$T/routes" ||
    fail "the OpenAPI check failed"
