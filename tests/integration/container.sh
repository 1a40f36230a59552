#!/usr/bin/env bash
# The container image, really built and run: deploy/build-image.sh builds it with podman
# from a debootstrapped base (no registry). It is under 120 MB and holds no shell; it runs
# `--target=all` on the host network as uid 10001, takes a lead and calls it (sandbox), and
# its HEALTHCHECK (`leadbus health`, no curl) passes. Then deploy/compose.yaml comes up through
# docker-compose v1 against podman's Docker API: six containers, one target each, over
# tcp://, every setting from an env file of live-looking credentials (env_file) pointed at
# the sandbox container, started in the order of their health conditions; three leads are
# called and synced, one of them posted through deploy/Caddyfile (Caddy, TLS from its own
# CA), which serves POST /leads and /exotel/callback and nothing else.
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
SIZE=$(podman image inspect "$IMG" --format '{{.Size}}')
echo "image: $((SIZE / 1000000)) MB ($(podman images "$IMG" --format '{{.Size}}'))"
[ "$SIZE" -lt 120000000 ] || fail "the image is $SIZE bytes, over 120 MB"
if podman run --rm --network=host --entrypoint /bin/sh "$IMG" -c true >/dev/null 2>&1; then
    fail "the image has a shell"
fi

# --- one container, every target, as the README's make run
NAME=leadbus-test-$$
cleanup_container() {
    podman logs "$NAME" >>"$T/container.log" 2>&1 || true
    podman rm -f -t 3 "$NAME" >/dev/null 2>&1 || true
}
# on exit: stop what was started, then cleanup (lib.sh) with the script's own status
trap 'rc=$?; set +e; cleanup_container; (exit $rc); cleanup' EXIT
P=$(free_port)
podman run -d --name "$NAME" --network=host -e PORT=$P -e HTTP_BIND=127.0.0.1 -e API_KEYS=$KEY \
    -e EXOTEL_CALL_DELAY_MS=300 -e CALL_HOURS=always -e SANDBOX_RING_MS=200 -e SANDBOX_OUTCOME_MODE=last-digit \
    "$IMG" --target=all >/dev/null
wait_for 30 "the container" curl -fsS "http://127.0.0.1:$P/readyz"
# no `id` in the image: the process's uid, seen from the host
uid=$(awk '/^Uid:/ {print $2}' "/proc/$(podman inspect --format '{{.State.Pid}}' "$NAME")/status")
[ "$uid" = 10001 ] || fail "the container runs as uid $uid, not 10001"
curl -s -X POST "http://127.0.0.1:$P/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
    -d '{"name":"Container Lead","phone":"9876543210"}' | grep -c '"success":true' >/dev/null || fail "post"
called() { curl -s "http://127.0.0.1:$P/exotel/stats" | grep -c '"success":1,.*"completed":1,.*"synced":1' >/dev/null; }
wait_for 30 "the lead called and synced inside the container" called
podman healthcheck run "$NAME" || fail "HEALTHCHECK failed"
podman exec "$NAME" leadbus health /readyz || fail "leadbus health /readyz failed"
if podman exec "$NAME" leadbus health /no-such-page 2>/dev/null; then fail "leadbus health passed a 404"; fi
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
# Live-looking credentials, as an operator's deploy/.env holds them; the URLs send both APIs
# to the sandbox container, which checks the same credentials (it reads the same file).
# Outcomes by the number's last digit: 4, 5 and 6 complete at the first attempt.
cat >"$T/compose.env" <<ENV
EXOTEL_ACCOUNT_SID=acme-live-sid
EXOTEL_API_KEY=live-key-$$-0123456789
EXOTEL_API_TOKEN=live-token-$$-0123456789
EXOTEL_EXOPHONE=08047112233
EXOTEL_AGENT_NUMBER=09876500001
EXOTEL_ENABLED=true
ZOHO_CLIENT_ID=1000.LIVECLIENT$$
ZOHO_CLIENT_SECRET=live-secret-$$-0123456789
ZOHO_REFRESH_TOKEN=1000.live-refresh-$$
ZOHO_EXTERNAL_ID_FIELD=Leadbus_Id
EXOTEL_BASE_URL=http://127.0.0.1:3006/sandbox/exotel
ZOHO_ACCOUNTS_URL=http://127.0.0.1:3006/sandbox/zoho
ZOHO_API_DOMAIN=http://127.0.0.1:3006/sandbox/zoho
PUBLIC_BASE_URL=http://127.0.0.1:3004
ALLOW_INSECURE_CALLBACKS=true
HTTP_BIND=127.0.0.1
EXOTEL_CALL_DELAY_MS=300
CALL_HOURS=always
SANDBOX_OUTCOME_MODE=last-digit
SANDBOX_RING_MS=200
ENV
export DOCKER_HOST="unix://$T/podman.sock" LEADBUS_IMAGE=$IMG API_KEYS=$KEY LEADBUS_ENV_FILE="$T/compose.env"
PROJECT=leadbustest$$
compose() { docker-compose -f "$ROOT/deploy/compose.yaml" -p "$PROJECT" --profile sandbox "$@"; }
# Podman runs HEALTHCHECKs on a schedule through systemd, which these machines lack: do what
# its timer (or dockerd) would, for this project's containers, so the health conditions of
# depends_on can come true.
health_runner() {
    while :; do
        for c in $(podman ps -q --filter "label=com.docker.compose.project=$PROJECT"); do
            podman healthcheck run "$c" >/dev/null 2>&1 || true
        done
        sleep 2
    done
}
health_runner &
PIDS+=($!)
trap 'rc=$?; set +e; compose logs --no-color >"$T/compose-all.log" 2>&1; compose down -v -t 5 >/dev/null 2>&1
      cleanup_container; (exit $rc); cleanup' EXIT
timeout 300 docker-compose -f "$ROOT/deploy/compose.yaml" -p "$PROJECT" --profile sandbox up -d \
    >"$T/compose.log" 2>&1 || fail "compose up: $(tail -20 "$T/compose.log")"
for p in 3000 3002 3003 3004 3005 3006; do
    wait_for 60 "the service on :$p" curl -fsS "http://127.0.0.1:$p/readyz"
done
[ "$(compose ps -q | wc -l)" -eq 6 ] || fail "expected six containers: $(compose ps)"
started() { podman inspect --format '{{.State.StartedAt.UnixNano}}' "$(compose ps -q "$1")"; }
for dep in ingest zoho-sync call-scheduler dialer; do
    [ "$(started stats)" -gt "$(started $dep)" ] || fail "stats started before $dep was healthy"
done
compose logs dialer zoho-sync >"$T/compose-services.log" 2>&1
grep -q "Exotel: live account" "$T/compose-services.log" || fail "the dialer did not take the env file's Exotel credentials"
grep -q "Zoho: live account" "$T/compose-services.log" || fail "zoho-sync did not take the env file's Zoho credentials"
for i in 1 2; do
    curl -s -X POST "http://127.0.0.1:3000/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
        -d "{\"name\":\"Compose $i\",\"phone\":\"987654321$((i + 3))\"}" | grep -c '"success":true' >/dev/null || fail "post $i"
done

# --- deploy/Caddyfile in front: TLS (Caddy's internal CA here), POST /leads and the callback only
if command -v caddy >/dev/null; then
    CP=$(free_port)
    mkdir -p "$T/caddy"
    start caddy env XDG_DATA_HOME="$T/caddy" XDG_CONFIG_HOME="$T/caddy" HOME="$T/caddy" CADDY_ADMIN=off \
        CADDY_HTTP_PORT="$(free_port)" CADDY_HTTPS_PORT="$CP" LEADBUS_HOST=localhost LEADBUS_TLS=internal \
        caddy run --config "$ROOT/deploy/Caddyfile" --adapter caddyfile
    wait_for 30 "Caddy on :$CP" curl -ks -o /dev/null "https://localhost:$CP/"
    code=$(curl -ks -o "$T/caddy-post.json" -w '%{http_code}' -X POST "https://localhost:$CP/leads" \
        -H "Content-Type: application/json" -H "X-API-Key: $KEY" -d '{"name":"Through Caddy","phone":"9876543216"}')
    [ "$code" = 202 ] && grep -q '"success":true' "$T/caddy-post.json" || fail "POST /leads through Caddy: $code $(cat "$T/caddy-post.json")"
    code=$(curl -ks -o /dev/null -w '%{http_code}' -X POST "https://localhost:$CP/exotel/callback?call=x&attempt=1&token=wrong" \
        -H "Content-Type: application/json" -d '{}')
    [ "$code" = 401 ] || [ "$code" = 404 ] || [ "$code" = 400 ] || fail "the callback through Caddy answered $code, not the dialer's refusal"
    for path in /exotel/stats /metrics /calls /sandbox/requests; do
        code=$(curl -ks -o /dev/null -w '%{http_code}' "https://localhost:$CP$path")
        [ "$code" = 404 ] || fail "Caddy serves $path ($code)"
    done
    echo "Caddyfile: POST /leads and /exotel/callback over TLS, nothing else"
else
    echo "caddy is not installed: posting the third lead directly"
    curl -s -X POST "http://127.0.0.1:3000/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" \
        -d '{"name":"Compose 3","phone":"9876543216"}' | grep -c '"success":true' >/dev/null || fail "post 3"
fi
three() { curl -s "http://127.0.0.1:3005/exotel/stats" | grep -c '"success":3,.*"completed":3,.*"synced":3' >/dev/null; }
wait_for 60 "three leads called and synced across six containers" three
echo "compose: six containers from an env file of live-looking credentials called and synced three leads"
