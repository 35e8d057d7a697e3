#!/usr/bin/env bash
# Builds the older containerd releases the config-version tests run against
# (1.7: config version 2; 2.0-2.2: version 3; 2.3: version 4), from the Go
# module proxy, once, into the cache outside the checkout; a no-op when they
# are all there already. scripts/deps.sh builds 2.4.2 the same way.
#
#   scripts/containerd-versions.sh            # every version below
#   scripts/containerd-versions.sh v2.1.9     # just these
#
# Each lands in $CACHE/containerd-vX.Y.Z/ as containerd, ctr and
# containerd-shim-runc-v2. Prints one "VERSION PATH" line per version, PATH
# being that version's containerd binary, on its last lines.
#
# `go install pkg@version` refuses a module whose go.mod has replace or
# exclude directives (1.7.x, 2.0.x and 2.1.x have exclude ones). Those are
# built from a throwaway main module that requires the release and copies
# its exclude/replace directives (they only apply in the main module), so
# the build list is the one the release was tested with.
set -euo pipefail

CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
VERSIONS=(v1.7.35 v2.0.14 v2.1.9 v2.2.10 v2.3.7)
[ $# -gt 0 ] && VERSIONS=("$@")
BINS=(containerd ctr containerd-shim-runc-v2)
TAGS="no_btrfs no_devmapper no_zfs"

have() {   # have DIR: every binary is there
  local b
  for b in "${BINS[@]}"; do [ -x "$1/$b" ] || return 1; done
}

build() {   # build VERSION DIR
  local v=$1 dir=$2 mod tmp gomod pkgs=() b start
  case $v in
    v1.*) mod=github.com/containerd/containerd ;;
    v*)   mod=github.com/containerd/containerd/v${v:1:1} ;;
    *)    echo "containerd-versions: bad version $v" >&2; return 1 ;;
  esac
  for b in "${BINS[@]}"; do pkgs+=("$mod/cmd/$b"); done
  start=$SECONDS
  echo "containerd-versions: building containerd $v into $dir (2-4 min)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  # In a directory of its own, outside our module, so that our go.mod isn't
  # touched; GOFLAGS= so that a -mod=... of the caller doesn't get in the way.
  (
    cd "$tmp"
    export GOFLAGS= CGO_ENABLED=1
    gomod=$(go mod download -json "$mod@$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    if [ -n "$gomod" ] && ! grep -Eq '^[[:space:]]*(replace|exclude)([[:space:](]|$)' "$gomod"; then
      GOBIN="$dir.tmp" go install -tags "$TAGS" "${pkgs[@]/%/@$v}"
    else
      go mod init tmp >/dev/null 2>&1
      # The release's exclude and replace directives, single lines and
      # blocks, less replacements by local directories (not in the zip).
      awk '/^(exclude|replace)[[:space:]]*\($/ { blk = 1 }
           /^(exclude|replace)[[:space:]]/ || blk { if ($0 !~ /=>[[:space:]]*\.\.?\//) print }
           blk && /^\)/ { blk = 0 }' "$gomod" >>go.mod
      go get "${pkgs[@]/%/@$v}"
      go build -tags "$TAGS" -o "$dir.tmp/" "${pkgs[@]}"
    fi
  ) >&2
  rm -rf "$tmp"
  trap - EXIT
  have "$dir.tmp"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  echo "containerd-versions: containerd $v built in $((SECONDS - start)) s" >&2
}

mkdir -p "$CACHE"
for v in "${VERSIONS[@]}"; do
  dir=$CACHE/containerd-$v
  have "$dir" || build "$v" "$dir"
done
for v in "${VERSIONS[@]}"; do
  echo "$v $CACHE/containerd-$v/containerd"
done
