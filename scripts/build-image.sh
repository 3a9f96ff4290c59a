#!/usr/bin/env bash
# Builds the berth container image from the Dockerfile, offline (no container registry).
#
# The Dockerfile starts FROM node:22-bookworm-slim, which cannot be pulled here, so this script
# first makes an OFFLINE STAND-IN base image, berth-test/node-base: a Debian bookworm minbase
# (debootstrap) with this machine's node and npm copied in and a `node` user (uid 1000), as in
# the official image. It is built once and kept; later runs reuse it (--force rebuilds it).
# Then it builds berth:test (or --tag) with `--build-arg BASE=berth-test/node-base`.
#
# npm inside the build reaches the registry through a proxy whose CA only this machine trusts.
# The CA file goes in as a BuildKit build secret (id npm-ca): it is readable during `npm ci` and
# is never written to any layer. Needs a docker client with BuildKit (docker 20.10-22 has it
# built in; 23+ needs the buildx plugin); the script picks one.
#
#   BERTH_NPM_CA   CA bundle for npm in the build (default: NODE_EXTRA_CA_CERTS, else
#                  /etc/ssl/certs/ca-certificates.crt); set it empty to pass none.
#
# Usage: scripts/build-image.sh [--tag NAME:TAG] [--force]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BASE_IMAGE=berth-test/node-base
tag=berth:test
force=false
while [ "$#" -gt 0 ]; do
  case "$1" in
    --tag)
      tag="${2:?--tag needs NAME:TAG}"
      shift
      ;;
    --force) force=true ;;
    -h | --help)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-image: unknown argument: $1 (usage: $0 [--tag NAME:TAG] [--force])" >&2
      exit 2
      ;;
  esac
  shift
done

say() {
  printf 'build-image: %s\n' "$*"
}

fail() {
  printf 'build-image: %s\n' "$*" >&2
  exit 1
}

docker info >/dev/null 2>&1 || fail "the Docker engine does not answer ('docker info' failed); start dockerd first"

# A client that builds with BuildKit: one with the buildx plugin, or a 20.10-22 client, whose
# `docker build` has BuildKit built in (23+ without buildx refuses DOCKER_BUILDKIT=1).
buildkit_client() {
  local candidate major
  for candidate in docker /usr/bin/docker /usr/local/bin/docker; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" buildx version >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
    major="$("$candidate" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)" || continue
    if [ -n "$major" ] && [ "$major" -lt 23 ] 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  return 1
}

build_base() {
  if ! $force && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "$BASE_IMAGE already exists, reused (use --force to rebuild)"
    return
  fi
  [ "$(id -u)" -eq 0 ] || fail "building $BASE_IMAGE needs root (debootstrap, chroot)"
  command -v node >/dev/null 2>&1 || fail "node is missing on this machine; it is copied into $BASE_IMAGE"
  local npm_dir
  npm_dir="$(npm root -g)/npm"
  [ -f "$npm_dir/bin/npm-cli.js" ] || fail "npm not found at $npm_dir"
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap </dev/null
  fi

  say "building $BASE_IMAGE: an OFFLINE STAND-IN for node:22-bookworm-slim (Debian minbase + this machine's node $(node --version))"
  local root="$workdir/rootfs"
  debootstrap --variant=minbase bookworm "$root" >"$workdir/debootstrap.log" 2>&1 ||
    {
      tail -n 30 "$workdir/debootstrap.log" >&2
      fail "debootstrap failed"
    }
  install -m 0755 "$(command -v node)" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  chroot "$root" groupadd --gid 1000 node
  chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  # As Debian's own images do: apt keeps no package caches in the layers built on top.
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' \
    --change 'LABEL org.opencontainers.image.description="offline stand-in for node:22-bookworm-slim (debootstrap + host node)"' \
    --message "offline stand-in for node:22-bookworm-slim" \
    - "$BASE_IMAGE" >/dev/null
  say "built $BASE_IMAGE ($(docker image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes)"
}

client="$(buildkit_client)" ||
  fail "no docker client here builds with BuildKit: install the buildx plugin (docker 23+) or use a 20.10-22 client"

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

build_base

ca="${BERTH_NPM_CA-${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}}"
secret_args=()
if [ -n "$ca" ]; then
  [ -r "$ca" ] || fail "CA bundle $ca is not readable (set BERTH_NPM_CA, or BERTH_NPM_CA= for none)"
  secret_args=(--secret "id=npm-ca,src=$ca")
fi

say "building $tag FROM $BASE_IMAGE with $client (BuildKit)"
started=$SECONDS
DOCKER_BUILDKIT=1 "$client" build --progress=plain \
  --build-arg "BASE=$BASE_IMAGE" \
  "${secret_args[@]}" \
  --tag "$tag" .
say "built $tag in $((SECONDS - started)) s ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
