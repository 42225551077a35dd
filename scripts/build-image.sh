#!/usr/bin/env bash
# Build the Shoal services image (Dockerfile) with no registry: a Debian bookworm base made
# here with debootstrap and `docker import`, then `docker build` FROM it. Idempotent: the
# base is made once; the image is rebuilt from the current tree.
#   scripts/build-image.sh [TAG]      (default shoal:dev)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TAG="${1:-shoal:dev}"
BASE=shoal-base:bookworm

ensure_dockerd
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || {
    [[ $(id -u) == 0 ]] || die "debootstrap is missing and installing it needs root"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
      || die "apt-get install debootstrap failed"
  }
  rootfs="$SHOAL_STATE/base-rootfs"
  rm -rf "$rootfs" && mkdir -p "$rootfs"
  say "making the base image $BASE with debootstrap (a few minutes, once)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" http://deb.debian.org/debian >"$SHOAL_STATE/logs/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $SHOAL_STATE/logs/debootstrap.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null || die "docker import of the base failed"
  rm -rf "$rootfs"
fi
say "building $TAG FROM $BASE"
extra_ca=""
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  extra_ca="$(cat /usr/local/share/ca-certificates/*.crt)"
fi
docker build -q --build-arg "BASE=$BASE" --build-arg "EXTRA_CA=$extra_ca" -t "$TAG" "$SHOAL_ROOT" \
    >"$SHOAL_STATE/logs/docker-build.log" 2>&1 \
  || die "docker build failed; see $SHOAL_STATE/logs/docker-build.log"
say "built $TAG"
