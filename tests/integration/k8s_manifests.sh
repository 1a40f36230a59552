#!/usr/bin/env bash
# The Kubernetes manifests, checked offline: `kubectl kustomize` renders the base and the
# production overlay, yamllint passes the sources and the output, every rendered object
# validates against the API schemas (npm kubernetes-models; the ServiceMonitor by hand), and
# k8s_assert.js checks what they promise (issue 17): the Secret required in production, each
# ingest pod's stream named after its pod and every replica dialled through a headless
# Service, disruption budgets, preStop pauses, an Ingress with TLS for the public routes,
# NetworkPolicies that open each bus port to its subscribers only, a ServiceMonitor, no
# sandbox. Then leadbus itself runs with the environment production gives the dialer and
# zoho-sync: left as shipped, each placeholder stops it with one line naming the setting.
# Skipped (exit 77) without kubectl.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v kubectl >/dev/null || { echo "SKIP: kubectl is not installed"; exit 77; }
kubectl kustomize "$ROOT/deploy/k8s/base" >"$T/base.yaml" || fail "kustomize base"
kubectl kustomize "$ROOT/deploy/k8s/overlays/production" >"$T/production.yaml" || fail "kustomize production"
yamllint -c "$ROOT/.yamllint.yaml" -f parsable "$ROOT/deploy" "$T/base.yaml" "$T/production.yaml" ||
    fail "yamllint"
(cd "$T" && timeout 120 npm install --silent --no-audit --no-fund kubernetes-models@5 yaml@2 >"$T/npm.log" 2>&1) ||
    fail "npm install: $(tail -5 "$T/npm.log")"
export NODE_PATH="$T/node_modules"
for f in base production; do
    node "$ROOT/deploy/k8s/validate.js" "$T/$f.yaml" >"$T/$f.check" || fail "$f: $(grep FAIL "$T/$f.check")"
    echo "$f: $(tail -1 "$T/$f.check")"
    node "$(dirname "$0")/k8s_assert.js" check "$f" "$T/$f.yaml" >"$T/$f.assert" ||
        fail "$f: $(grep FAIL "$T/$f.assert")"
    sed 's/^/  /' "$T/$f.assert"
done
[ "$(grep -c '^kind: StatefulSet' "$T/base.yaml")" -eq 5 ] || fail "five StatefulSets expected"
for k in NetworkPolicy PodDisruptionBudget Ingress ServiceMonitor; do
    grep -q "^kind: $k\$" "$T/production.yaml" || fail "production renders no $k"
done
grep -q 'optional: true' "$T/production.yaml" && fail "production has an optional reference"
grep -q 'leadbus-sandbox' "$T/production.yaml" && fail "the production overlay still has the sandbox"
grep -q 'EXOTEL_BASE_URL\|ZOHO_ACCOUNTS_URL\|ZOHO_API_DOMAIN' "$T/production.yaml" && fail "production points at the sandbox"
grep -q 'image: registry.example.com/leadbus:0.1.0' "$T/production.yaml" || fail "production image"

# --- leadbus against production's rendered environment, as shipped (nothing filled in). Listen
# addresses and the data directory are moved to loopback and $T; the upstream URLs point at a
# closed loopback port, so nothing could leave this machine even if a check were missing.
SAFE=(EXOTEL_BASE_URL=http://127.0.0.1:9/none ZOHO_ACCOUNTS_URL=http://127.0.0.1:9/none
    ZOHO_API_DOMAIN=http://127.0.0.1:9/none)
SECRET=(API_KEYS=test-key-0123456789abcdef EXOTEL_ACCOUNT_SID=YOUR_SID EXOTEL_API_KEY=YOUR_KEY
    EXOTEL_API_TOKEN=YOUR_TOKEN ZOHO_CLIENT_ID=YOUR_ID ZOHO_CLIENT_SECRET=YOUR_SECRET ZOHO_REFRESH_TOKEN=YOUR_REFRESH)
# The bus certificates production mounts from cert-manager's Secrets (/etc/leadbus/bus-tls), made
# here by deploy/bus-certs.sh (the same file names: ca.crt and one pair per target).
"$ROOT/deploy/bus-certs.sh" "$T/bus-tls" >/dev/null || fail "bus-certs.sh"
n=0
# refuses WORKLOAD EXPECTED-LINE VAR=value...: exits non-zero before listening, one line naming it
refuses() {
    local wl=$1 want=$2; shift 2
    n=$((n + 1))
    mkdir -p "$T/run$n"
    local port rc=0 env
    port=$(free_port)
    mapfile -t env < <(node "$(dirname "$0")/k8s_assert.js" env "$T/production.yaml" "$wl" "$wl-0")
    [ ${#env[@]} -gt 5 ] || fail "no environment rendered for $wl"
    (cd "$T/run$n" && env -i "${env[@]}" DATA_DIR="$T/run$n/data" PORT="$port" HTTP_BIND=127.0.0.1 \
        BUS_DIALER_PUB="ipc://$T/run$n/p.ipc" BUS_DIALER_REPLAY="ipc://$T/run$n/r.ipc" \
        BUS_ZOHO_SYNC_PUB="ipc://$T/run$n/p.ipc" BUS_ZOHO_SYNC_REPLAY="ipc://$T/run$n/r.ipc" \
        BUS_TLS_CA="$T/bus-tls/ca.crt" BUS_TLS_CERT="$T/bus-tls/${wl#leadbus-}.crt" \
        BUS_TLS_KEY="$T/bus-tls/${wl#leadbus-}.key" "${SAFE[@]}" "$@" timeout 20 "$LEADBUS" --target="${wl#leadbus-}") >"$T/refused$n.log" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "$wl [$*]: exit $rc, expected a refusal: $(tail -5 "$T/refused$n.log")"
    grep -q "leadbus started" "$T/refused$n.log" && fail "$wl [$*]: started before refusing"
    local line
    line=$(grep '^leadbus: ' "$T/refused$n.log" || true)
    [[ "$line" == "leadbus: $want"* ]] || fail "$wl [$*]: expected 'leadbus: $want…', got: $(cat "$T/refused$n.log")"
    echo "  refused: $line"
}
refuses leadbus-dialer "EXOTEL_ACCOUNT_SID: required with SANDBOX=off"            # no Secret values
refuses leadbus-zoho-sync "ZOHO_CLIENT_ID: required with SANDBOX=off"
refuses leadbus-dialer "PUBLIC_BASE_URL: live Exotel calls need an https URL" "${SECRET[@]}"
refuses leadbus-dialer "dialer: EXOTEL_EXOPHONE: required" "${SECRET[@]}" PUBLIC_BASE_URL=https://leads.example.com
refuses leadbus-dialer "dialer: EXOTEL_AGENT_NUMBER: required when EXOTEL_APP_ID is not set" "${SECRET[@]}" \
    PUBLIC_BASE_URL=https://leads.example.com EXOTEL_EXOPHONE=08000000000
echo "kustomize, yamllint, the schemas and the manifests' promises hold for base and production;"
echo "production's placeholders stop leadbus with a line naming each"
