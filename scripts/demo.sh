#!/usr/bin/env bash
# A demo on a throwaway sandbox. First, `check` on this real host (its
# /dev/kvm answers the KVM ioctl; it has no /dev/vhost-vsock and no shims).
# Then, for containerd 1.6 and 2.4.2: take the default config that the
# installed containerd writes, and apply the example policies against a
# sandbox host root that has stand-in shims, so that gvisor and crun are
# ready and kata is withheld for want of vhost-vsock. Show the diff,
# containerd's own view, the node labels and RuntimeClasses, apply again
# (nothing to do), and revert to the original bytes. Nothing outside a temp
# dir is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/runtimeclassd}
CTRD2=${CONTAINERD2_BIN:-${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}/containerd-v2.4.2/containerd}
sandbox=$(mktemp -d /tmp/runtimeclassd-demo.XXXXXX)
trap 'rm -rf "$sandbox"' EXIT
chmod 0755 "$sandbox"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

mkdir -p "$sandbox/policy.d"
install -m 0644 examples/policy.d/*.toml "$sandbox/policy.d/"

step "runtimeclassd check, on this real host"
"$BIN" --config /dev/null --policy-dir "$sandbox/policy.d" check || echo "(exit status $?: not every handler is ready)"

# The sandbox host: stand-in shims (copies of /bin/true) and the files the
# example policies name.
host=$sandbox/host
for f in /usr/bin/containerd-shim-runc-v2 /usr/bin/containerd-shim-runsc-v1 /usr/bin/runsc /usr/bin/crun \
         /opt/kata/bin/containerd-shim-kata-v2 /opt/kata/bin/qemu-system-x86_64; do
  install -D -m 0755 /bin/true "$host$f"
done
install -D -m 0644 /dev/null "$host/etc/containerd/runsc.toml"
install -D -m 0644 /dev/null "$host/opt/kata/share/kata-containers/vmlinux.container"
install -D -m 0644 /dev/null "$host/opt/kata/share/kata-containers/kata-containers.img"
install -D -m 0644 /dev/stdin "$host/opt/kata/share/defaults/kata-containers/configuration.toml" <<'KATA'
[hypervisor.qemu]
path = "/opt/kata/bin/qemu-system-x86_64"
kernel = "/opt/kata/share/kata-containers/vmlinux.container"
image = "/opt/kata/share/kata-containers/kata-containers.img"
KATA

for ctrd in /usr/bin/containerd "$CTRD2"; do
  ver=$("$ctrd" --version | awk '{print $3}')
  dir=$sandbox/$ver
  mkdir -p "$dir/etc/containerd"
  "$ctrd" config default > "$dir/etc/containerd/config.toml"
  cp "$dir/etc/containerd/config.toml" "$dir/original.toml"
  rcd() { "$BIN" --config /dev/null --containerd-bin "$ctrd" --containerd-config "$dir/etc/containerd/config.toml" \
      --policy-dir "$sandbox/policy.d" --state-dir "$dir/state" --host-root "$host" --shim-path /usr/bin:/opt/kata/bin \
      --nfd-feature-file "$dir/features.d/runtimeclassd" "$@"; }

  step "containerd $ver: check against the sandbox host"
  rcd check || echo "(exit status $?: not every handler is ready)"
  step "containerd $ver: apply --dry-run --diff (containerd validates the candidate)"
  rcd apply --dry-run --diff
  step "containerd $ver: apply"
  rcd apply --no-restart
  step "containerd $ver: containerd's own view of the runtimes"
  "$ctrd" --config "$dir/etc/containerd/config.toml" config dump 2>/dev/null | grep -E '^\s*\[plugins.*runtimes\.[a-z0-9-]+\]' || true
  step "containerd $ver: Node Feature Discovery labels"
  cat "$dir/features.d/runtimeclassd"
  step "containerd $ver: apply again (idempotent)"
  rcd apply --no-restart
  step "containerd $ver: revert"
  rcd revert --no-restart
  if cmp -s "$dir/original.toml" "$dir/etc/containerd/config.toml"; then
    echo "config.toml is byte-for-byte the original again"
  else
    echo "revert did not restore the original" >&2; exit 1
  fi
done

step "RuntimeClass manifests for the policy"
"$BIN" --config /dev/null --policy-dir "$sandbox/policy.d" runtimeclass
