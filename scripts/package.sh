#!/usr/bin/env bash
# Builds dist/runtimeclassd_VERSION-1_ARCH.deb and .rpm with nfpm (built
# once from the Go module proxy into the cache) from bin/runtimeclassd
# (make build). VERSION sets the version, DIST another output directory
# (the e2e builds upgrades that way).
#
# nfpm v2.45.2 writes the .rpm with github.com/google/rpmpack, which names
# each cpio member of the payload by its absolute path (rpm.go, writePayload:
# the header's file name, "/usr/bin/x"); rpmbuild writes "./usr/bin/x".
# Installing works either way (rpm reads the paths from the header), but
# `rpm2cpio | cpio -id`, which rpmlint and many scripts use to unpack,
# then writes into / instead of the current directory. nfpm has no option
# for it, and the nfpm releases that replaced rpmpack need a module this
# machine's module proxy refuses. So the nfpm built here uses rpmpack with
# that one field prefixed by "." (a replace directive in a scratch module;
# nothing of rpmpack is kept in this repository), and the package test
# checks that every payload member is relative.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
NFPM_VERSION=v2.45.2
NFPM=$CACHE/nfpm-$NFPM_VERSION-relative-payload/nfpm
if [ ! -x "$NFPM" ]; then
  echo "package: building nfpm $NFPM_VERSION (relative rpm payload) into $(dirname "$NFPM")" >&2
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    export GOFLAGS= GOWORK=off
    go mod init nfpm-relative-payload >/dev/null 2>&1
    go get "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" >&2
    rpmpack=$(go list -m -f '{{.Dir}}' github.com/google/rpmpack)
    cp -r "$rpmpack" rpmpack
    chmod -R u+w rpmpack
    sed -i 's/^\t\tName:  f\.Name,$/\t\tName:  "." + f.Name,/' rpmpack/rpm.go
    if [ "$(grep -c 'Name:  "." + f.Name,' rpmpack/rpm.go)" != 1 ]; then
      echo "package: rpmpack's writePayload is not what this script patches; look at $tmp/rpmpack/rpm.go" >&2
      exit 1
    fi
    go mod edit -replace github.com/google/rpmpack=./rpmpack
    mkdir -p "$(dirname "$NFPM")"
    go build -o "$NFPM.tmp" github.com/goreleaser/nfpm/v2/cmd/nfpm
    mv "$NFPM.tmp" "$NFPM"
  )
  rm -rf "$tmp"
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
# The systemd generator that derives the units' writable paths from the
# daemon config (packaging/generator).
CGO_ENABLED=0 go build -buildmode=pie -trimpath -ldflags '-s -w' -o bin/runtimeclassd-generator ./packaging/generator
DIST=${DIST:-dist}
mkdir -p dist "$DIST"
rm -f "$DIST"/*.deb "$DIST"/*.rpm
scripts/copyright.sh >dist/copyright.tmp.$$
mv dist/copyright.tmp.$$ dist/copyright
for p in deb rpm; do
  "$NFPM" package --config packaging/nfpm.yaml --packager "$p" --target "$DIST/" >&2
done
ls "$DIST"/*.deb "$DIST"/*.rpm
