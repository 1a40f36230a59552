#!/usr/bin/env bash
# Installs the Debian packages leadbus needs to build, test and run.
# A no-op when everything is present, so `make run` / `make test` can call it every time.
set -euo pipefail

build_pkgs=(cmake make gcc g++ pkg-config
    libnng-dev libmsgpack-dev libcivetweb-dev libcurl4-openssl-dev libsqlite3-dev
    libcjson-dev libphonenumber-dev libicu-dev libcmocka-dev libssl-dev)
# Tools the test suite and benchmarks use: clang for libFuzzer targets, curl for
# HTTP tests, nngcat as a third-party subscriber, promtool (prometheus) to check
# /metrics, chromium to open the dashboard, wrk for the benchmarks, podman (with runc and
# debootstrap: no registry here) and docker-compose to build and run the image, caddy as the TLS
# proxy of deploy/Caddyfile, yamllint for the Kubernetes manifests (kubectl comes with the
# machine; npm fetches the schema package), dnsmasq (dnsmasq-base: the binary, no service) as the
# DNS server of the bus discovery test.
test_pkgs=(clang libclang-rt-14-dev curl nng-utils prometheus chromium wrk
    podman buildah fuse-overlayfs slirp4netns uidmap debootstrap runc docker-compose yamllint caddy
    dnsmasq-base)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
    want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
