#!/usr/bin/env bash
# Builds, offline, the local images that the tests and sample-repo use.
#
# No container registry is reachable where berth is built and tested, so nothing may depend on
# a pull. Every image here is made from Debian's static busybox (/bin/busybox): one binary plus a
# symlink per applet (sh, httpd, wget, nc, sleep, ...), imported with `docker import`.
#
#   busybox:1.36          offline stand-in for the public busybox image (sample-repo uses it)
#   berth-test/web:v1     busybox httpd serving /www/index.html = "v1" on port 8080
#   berth-test/web:v2     the same with "v2" (a different image id: a new version to roll to)
#   berth-test/crash:v1   a default command that exits 1 at once (a crash-looping version)
#
# Idempotent: an image whose tag already exists is skipped unless --force is given.
# Usage: scripts/build-images.sh [--force]
set -euo pipefail

force=false
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    -h | --help)
      sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-images: unknown argument: $arg (usage: $0 [--force])" >&2
      exit 2
      ;;
  esac
done

echo "build-images: building OFFLINE STAND-IN images from Debian's busybox-static."
echo "build-images: these are NOT the upstream images; they only exist so nothing depends on a registry."

if ! docker info >/dev/null 2>&1; then
  echo "build-images: the Docker engine does not answer ('docker info' failed); start dockerd first." >&2
  exit 1
fi

if [ ! -x /bin/busybox ]; then
  echo "build-images: /bin/busybox is missing; installing busybox-static with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static </dev/null
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# Lays out a minimal root filesystem: busybox with every applet linked in /bin, plus the few
# files programs expect (/etc/passwd so `user: nobody` works, a writable /tmp).
make_rootfs() {
  local root="$1"
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/www" "$root/root" "$root/proc" "$root/sys" "$root/dev"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$root/bin/$applet"
  done
  mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/sbin"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

image_exists() {
  docker image inspect "$1" >/dev/null 2>&1
}

# import_image NAME:TAG ROOT CMD_JSON
import_image() {
  local ref="$1" root="$2" cmd="$3"
  tar -C "$root" -c . | docker import \
    --change "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "CMD $cmd" \
    --change 'LABEL org.opencontainers.image.description="offline stand-in built from Debian busybox-static"' \
    --message "offline stand-in built from Debian busybox-static" \
    - "$ref" >/dev/null
  echo "build-images: built $ref ($(docker image inspect --format '{{.Id}}' "$ref"))"
}

build() {
  local ref="$1" cmd="$2" index_html="$3"
  if ! $force && image_exists "$ref"; then
    echo "build-images: $ref already exists, skipped (use --force to rebuild)"
    return
  fi
  local root="$workdir/$(echo "$ref" | tr '/:' '__')"
  make_rootfs "$root"
  if [ -n "$index_html" ]; then
    printf '%s\n' "$index_html" >"$root/www/index.html"
  fi
  import_image "$ref" "$root" "$cmd"
}

build busybox:1.36 '["sh"]' ''
build berth-test/web:v1 '["httpd","-f","-p","8080","-h","/www"]' 'v1'
build berth-test/web:v2 '["httpd","-f","-p","8080","-h","/www"]' 'v2'
build berth-test/crash:v1 '["sh","-c","echo berth-test/crash: exiting with status 1 >&2; exit 1"]' ''

echo "build-images: done (offline stand-ins: busybox:1.36 berth-test/web:v1 berth-test/web:v2 berth-test/crash:v1)"
