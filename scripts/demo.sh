#!/usr/bin/env bash
# A demo on a throwaway sandbox: take the default config that the installed
# containerd writes, apply the example policies to it, show what changed
# and that containerd accepts it, apply again (nothing to do), and revert to
# the original bytes. Nothing outside a temp dir is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/runtimeclassd}
CTRD2=${CONTAINERD2_BIN:-/var/tmp/runtimeclassd-cache/containerd-v2.4.2/containerd}
sandbox=$(mktemp -d /tmp/runtimeclassd-demo.XXXXXX)
trap 'rm -rf "$sandbox"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

for ctrd in /usr/bin/containerd "$CTRD2"; do
  ver=$("$ctrd" --version | awk '{print $3}')
  dir=$sandbox/$ver
  mkdir -p "$dir/etc/containerd" "$dir/policy.d"
  install -m 0644 examples/policy.d/*.toml "$dir/policy.d/"
  "$ctrd" config default > "$dir/etc/containerd/config.toml"
  cp "$dir/etc/containerd/config.toml" "$dir/original.toml"
  rcd() { "$BIN" --config /dev/null --containerd-bin "$ctrd" --containerd-config "$dir/etc/containerd/config.toml" \
      --policy-dir "$dir/policy.d" --state-dir "$dir/state" --host-root / "$@"; }

  step "containerd $ver: policy files"
  rcd validate "$dir"/policy.d/*.toml
  step "containerd $ver: apply --dry-run --diff (containerd validates the candidate)"
  rcd apply --dry-run --diff
  if rcd check >/dev/null 2>&1 || [ $? -ne 2 ]; then
    step "containerd $ver: host readiness (check)"
    rcd check || true
  fi
  step "containerd $ver: apply"
  rcd apply --no-restart
  step "containerd $ver: containerd's own view of the handlers"
  "$ctrd" --config "$dir/etc/containerd/config.toml" config dump 2>/dev/null | grep -E '^\s*\[plugins.*runtimes\.[a-z0-9-]+\]' || true
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
