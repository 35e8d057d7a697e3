#!/usr/bin/env bash
# Builds (once) the Debian 12 rootfs the e2e nodes boot: systemd, D-Bus,
# containerd 1.6, runc and busybox. Cached outside the checkout.
set -euo pipefail
CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
ROOTFS=$CACHE/rootfs-bookworm
[ -x "$ROOTFS/lib/systemd/systemd" ] && exit 0
command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null || {
  echo "e2e: installing debootstrap and systemd-container" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap systemd-container >&2
}
echo "e2e: building the node rootfs in $ROOTFS (about a minute)" >&2
rm -rf "$ROOTFS.tmp"
mkdir -p "$CACHE"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,containerd,runc,iproute2,busybox-static \
  bookworm "$ROOTFS.tmp" >&2
mv "$ROOTFS.tmp" "$ROOTFS"
