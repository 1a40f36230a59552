#!/usr/bin/env bash
# Build the leadbus image with podman, with no registry: the FROM image
# (docker.io/library/debian:bookworm-slim) is made locally from Debian's
# archive with debootstrap when it is not there yet (a minbase bookworm under
# the name the Containerfile asks for).
# Usage: deploy/build-image.sh [TAG]     default TAG: localhost/leadbus:latest
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-localhost/leadbus:latest}
BASE=docker.io/library/debian:bookworm-slim
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/containers.conf}
if ! podman image exists "$BASE"; then
    W=$(mktemp -d /tmp/leadbus-base.XXXXXX)
    trap 'rm -rf "$W"' EXIT
    echo "build-image: making $BASE with debootstrap" >&2
    debootstrap --variant=minbase bookworm "$W/rootfs" >"$W/debootstrap.log" 2>&1 ||
        { tail -20 "$W/debootstrap.log" >&2; exit 1; }
    tar -C "$W/rootfs" -c . | podman import - "$BASE" >/dev/null
fi
# RUN steps use the host's network (apt-get from Debian's archive): no bridge, no private ranges.
# Docker format keeps HEALTHCHECK (the OCI format has no place for it).
podman build --pull=never --network=host --format docker -t "$TAG" -f "$ROOT/deploy/Containerfile" "$ROOT"
