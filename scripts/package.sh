#!/usr/bin/env bash
# Builds dist/runtimeclassd_VERSION_ARCH.deb and .rpm with nfpm (installed
# once from the Go module proxy into the cache).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
NFPM=$CACHE/nfpm-v2.45.2/nfpm
if [ ! -x "$NFPM" ]; then
  echo "package: installing nfpm v2.45.2 into $(dirname "$NFPM")" >&2
  (cd "$(mktemp -d)" && GOFLAGS= GOBIN="$(dirname "$NFPM")" go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2)
fi
# A release tag vX.Y.Z gives X.Y.Z; anything else 0.0.0~gitHASH, which sorts
# before every release.
if [ -z "${VERSION:-}" ]; then
  if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
    VERSION=${tag#v}
  else
    VERSION="0.0.0~git$(git rev-parse --short HEAD)"
  fi
fi
export VERSION GOARCH=${GOARCH:-$(go env GOARCH)}
mkdir -p dist
rm -f dist/*.deb dist/*.rpm
for p in deb rpm; do
  "$NFPM" package --config packaging/nfpm.yaml --packager "$p" --target dist/ >&2
done
ls dist/*.deb dist/*.rpm
