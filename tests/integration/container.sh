#!/usr/bin/env bash
# The container image, really built and run: deploy/build-image.sh builds it
# with podman from a debootstrapped base (no registry); the image runs
# `--target=all` on the host network as a non-root user, takes a lead and
# calls it (sandbox), and its HEALTHCHECK passes. Then deploy/compose.yaml
# comes up through docker-compose v1 against podman's Docker API: six
# containers, one target each, over tcp://, with the same result.
# Skipped (exit 77) where podman cannot run.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CONTAINERS_CONF="$ROOT/deploy/containers.conf"
if ! command -v podman >/dev/null || ! podman info >"$T/podman-info.log" 2>&1; then
    echo "SKIP: podman cannot run here: $(tail -1 "$T/podman-info.log" 2>/dev/null || echo 'not installed')"
    exit 77
fi
IMG=localhost/leadbus:test
KEY=test-key-0123456789abcdef
"$ROOT/deploy/build-image.sh" "$IMG" >"$T/build.log" 2>&1 || fail "image build: $(tail -20 "$T/build.log")"
echo "image: $(podman images "$IMG" --format '{{.Size}}')"

# --- one container, every target, as the README's make run
NAME=leadbus-test-$$
cleanup_container() { podman rm -f -t 3 "$NAME" >/dev/null 2>&1 || true; }
trap 'cleanup_container; cleanup' EXIT
P=$(free_port)
podman run -d --name "$NAME" --network=host -e PORT=$P -e HTTP_BIND=127.0.0.1 -e API_KEYS=$KEY \
    -e EXOTEL_CALL_DELAY_MS=300 -e CALL_HOURS=always -e SANDBOX_RING_MS=200 "$IMG" --target=all >/dev/null
wait_for 30 "the container" curl -fsS "http://127.0.0.1:$P/readyz"
[ "$(podman exec "$NAME" id -u)" = 10001 ] || fail "the container runs as $(podman exec "$NAME" id -u), not 10001"
curl -s -X POST "http://127.0.0.1:$P/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
    -d '{"name":"Container Lead","phone":"9876543210"}' | grep -q '"success":true' || fail "post"
called() { curl -s "http://127.0.0.1:$P/exotel/stats" | grep -q '"success":1,.*"completed":1,.*"synced":1'; }
wait_for 30 "the lead called and synced inside the container" called
podman healthcheck run "$NAME" || fail "HEALTHCHECK failed"
cleanup_container
echo "container: --target=all took a lead, called it, synced it; HEALTHCHECK ok; uid 10001"

# --- compose: six containers over tcp:// (default ports 3000-3006, 7401-7432)
for p in 3000 3002 3003 3004 3005 3006 7401 7411 7421 7431; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then fail "port $p is in use; compose needs it"; fi
done
command -v docker-compose >/dev/null || fail "docker-compose is not installed"
podman system service --time=0 "unix://$T/podman.sock" >"$T/podman-service.log" 2>&1 &
PIDS+=($!)
wait_for 10 "podman's Docker API" test -S "$T/podman.sock"
export DOCKER_HOST="unix://$T/podman.sock" LEADBUS_IMAGE=$IMG API_KEYS=$KEY EXOTEL_CALL_DELAY_MS=300 CALL_HOURS=always
PROJECT=leadbustest$$
compose() { docker-compose -f "$ROOT/deploy/compose.yaml" -p "$PROJECT" "$@"; }
trap 'compose down -v -t 5 >/dev/null 2>&1 || true; cleanup_container; cleanup' EXIT
compose up -d >"$T/compose.log" 2>&1 || fail "compose up: $(tail -20 "$T/compose.log")"
for p in 3000 3002 3003 3004 3005 3006; do
    wait_for 60 "the service on :$p" curl -fsS "http://127.0.0.1:$p/readyz"
done
[ "$(compose ps -q | wc -l)" -eq 6 ] || fail "expected six containers: $(compose ps)"
for i in 1 2 3; do
    curl -s -X POST "http://127.0.0.1:3000/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
        -d "{\"name\":\"Compose $i\",\"phone\":\"987654321$((i + 3))\"}" | grep -q '"success":true' || fail "post $i"
done
three() { curl -s "http://127.0.0.1:3005/exotel/stats" | grep -q '"success":3,.*"completed":3,.*"synced":3'; }
wait_for 60 "three leads called and synced across six containers" three
echo "compose: six containers over tcp:// called and synced three leads"
