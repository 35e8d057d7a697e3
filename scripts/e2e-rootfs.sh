#!/usr/bin/env bash
# Builds (once) the Debian 12 rootfs the e2e nodes boot: systemd, D-Bus,
# containerd 1.6, runc and busybox; the runtimes the smoke tests run for
# real (crun, gVisor's runsc, the CNI plugins); Debian 13's crun in
# /opt/crun-trixie, for containerd 2.x (Debian 12's crun 1.8.1 predates the
# runtime-spec version containerd 2.x writes); and crictl, which the
# README's walkthrough uses (built from the Go module proxy, not in Debian
# 12). Cached outside the checkout. The folder's name carries a version:
# bump it here and in test/e2e/node_test.go whenever what goes in changes,
# so that every machine builds the new one.
set -euo pipefail
CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
ROOTFS=$CACHE/rootfs-bookworm-2
CRICTL_VERSION=v1.37.0
CRICTL=$CACHE/crictl-$CRICTL_VERSION/crictl
[ -x "$ROOTFS/lib/systemd/systemd" ] && exit 0
command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null && command -v patchelf >/dev/null || {
  echo "e2e: installing debootstrap, systemd-container and patchelf" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap systemd-container patchelf >&2
}
mkdir -p "$CACHE"
if [ ! -x "$CRICTL" ]; then
  echo "e2e: building crictl $CRICTL_VERSION into ${CRICTL%/*} (about a minute)" >&2
  tmp=$(mktemp -d)
  # Outside the module, so that our go.mod isn't touched.
  (cd "$tmp" && GOFLAGS= GOBIN="$tmp/bin" CGO_ENABLED=0 go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION") >&2
  mkdir -p "${CRICTL%/*}"
  mv "$tmp/bin/crictl" "$CRICTL"
  rm -rf "$tmp"
fi
echo "e2e: building the node rootfs in $ROOTFS (one to two minutes)" >&2
rm -rf "$ROOTFS.tmp"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,containerd,runc,iproute2,busybox-static,crun,runsc,containernetworking-plugins \
  bookworm "$ROOTFS.tmp" >&2
install -m 0755 "$CRICTL" "$ROOTFS.tmp/usr/local/bin/crictl"

# Debian 13's crun needs a newer libc than Debian 12's: it gets its own
# libraries beside it, and patchelf makes it load them (the interpreter and
# an RPATH, which also holds for its libraries' own dependencies).
echo "e2e: adding Debian 13's crun in /opt/crun-trixie" >&2
tmp=$(mktemp -d)
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs" "$tmp/x"
echo "deb http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
apt=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$tmp/lists"
  -o "Dir::Cache=$tmp/cache" -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
apt-get -qq "${apt[@]}" update >&2
(cd "$tmp/debs" && apt-get -qq "${apt[@]}" download crun libc6 libcap2 libseccomp2 libsystemd0 libyajl2 >&2)
for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
opt=$ROOTFS.tmp/opt/crun-trixie
mkdir -p "$opt"
install -m 0755 "$tmp/x/usr/bin/crun" "$opt/crun"
for lib in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libcap.so.2 libseccomp.so.2 libsystemd.so.0 libyajl.so.2; do
  cp -L "$tmp/x/usr/lib/x86_64-linux-gnu/$lib" "$opt/$lib"
done
patchelf --set-interpreter /opt/crun-trixie/ld-linux-x86-64.so.2 --force-rpath --set-rpath /opt/crun-trixie "$opt/crun"
rm -rf "$tmp"
mv "$ROOTFS.tmp" "$ROOTFS"
