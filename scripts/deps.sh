#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian 12 machine, and is
# quick when it is all there already:
#   - Debian's containerd 1.6 and runc (config versions 1 and 2), GNU patch,
#     prometheus (promtool tests the alert rules), a static busybox (the
#     only binary of the test images) and file(1); zsh and fish, which
#     check the shell completions the packages ship, and man, which checks
#     the man pages (cmd/runtimeclassd/cli_test.go);
#   - containerd 2.4.2 (config versions 3 and 4), built from the Go module
#     proxy once and cached outside the checkout; and 1.7, 2.0, 2.1, 2.2 and
#     2.3 for the version matrix (scripts/containerd-versions.sh).
# Prints the path of the containerd 2.x binary on its last line.
set -euo pipefail

CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
CTRD2_VERSION=v2.4.2
CTRD2_DIR=$CACHE/containerd-$CTRD2_VERSION

need_apt=()
for pkg in containerd runc patch prometheus busybox-static file zsh fish man-db; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
for pkg in "$@"; do   # extra packages a caller wants (e2e, bench)
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages: ${need_apt[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "deps: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

if [ ! -x "$CTRD2_DIR/containerd" ] || [ ! -x "$CTRD2_DIR/ctr" ] || [ ! -x "$CTRD2_DIR/containerd-shim-runc-v2" ]; then
  echo "deps: building containerd $CTRD2_VERSION into $CTRD2_DIR (about 90 s)" >&2
  mkdir -p "$CTRD2_DIR"
  tmp=$(mktemp -d)
  # Outside the module, so that our go.mod isn't touched.
  (cd "$tmp" && GOFLAGS= GOBIN="$CTRD2_DIR.tmp" CGO_ENABLED=1 go install -tags "no_btrfs no_devmapper no_zfs" \
    github.com/containerd/containerd/v2/cmd/containerd@$CTRD2_VERSION \
    github.com/containerd/containerd/v2/cmd/ctr@$CTRD2_VERSION \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CTRD2_VERSION) >&2
  rm -rf "$tmp"
  mv "$CTRD2_DIR.tmp"/* "$CTRD2_DIR"/ && rmdir "$CTRD2_DIR.tmp"
fi
# containerd 1.7, 2.0, 2.1, 2.2 and 2.3 for the version matrix
# (TestVersionMatrix), built once and cached like 2.4.2.
"$(dirname "$0")/containerd-versions.sh" >&2
echo "$CTRD2_DIR/containerd"
