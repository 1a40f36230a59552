#!/usr/bin/env bash
# The Kubernetes manifests, checked offline: `kubectl kustomize` renders the
# base and the production overlay, yamllint passes the sources and the
# output, every rendered object validates against the API schemas (npm
# kubernetes-models), and the production overlay has no sandbox and no
# sandbox URLs. Skipped (exit 77) without kubectl.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v kubectl >/dev/null || { echo "SKIP: kubectl is not installed"; exit 77; }
kubectl kustomize "$ROOT/deploy/k8s/base" >"$T/base.yaml" || fail "kustomize base"
kubectl kustomize "$ROOT/deploy/k8s/overlays/production" >"$T/production.yaml" || fail "kustomize production"
yamllint -c "$ROOT/.yamllint.yaml" -f parsable "$ROOT/deploy" "$T/base.yaml" "$T/production.yaml" ||
    fail "yamllint"
(cd "$T" && npm install --silent --no-audit --no-fund kubernetes-models@5 yaml@2 >"$T/npm.log" 2>&1) ||
    fail "npm install: $(tail -5 "$T/npm.log")"
for f in base production; do
    NODE_PATH="$T/node_modules" node "$ROOT/deploy/k8s/validate.js" "$T/$f.yaml" >"$T/$f.check" ||
        fail "$f: $(grep FAIL "$T/$f.check")"
    echo "$f: $(tail -1 "$T/$f.check")"
done
[ "$(grep -c '^kind: StatefulSet' "$T/base.yaml")" -eq 5 ] || fail "five StatefulSets expected"
grep -q 'leadbus-sandbox' "$T/production.yaml" && fail "the production overlay still has the sandbox"
grep -q 'EXOTEL_BASE_URL\|ZOHO_ACCOUNTS_URL\|ZOHO_API_DOMAIN' "$T/production.yaml" && fail "production points at the sandbox"
grep -q 'image: registry.example.com/leadbus:0.1.0' "$T/production.yaml" || fail "production image"
echo "kustomize, yamllint and the schemas accept base and production"
