#!/usr/bin/env bash
# Builds (once) what the cluster e2e runs: Kubernetes' kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet and kubectl, and etcd,
# from the Go module proxy, cached outside the checkout. Quick when cached.
# Prints the directory holding the binaries on its last line.
#
# `go install k8s.io/kubernetes/cmd/...@v` is refused (its go.mod has replace
# directives), so the build runs in a scratch module that requires
# k8s.io/kubernetes and replaces each of its staging modules with the
# published version. etcd is the version that Kubernetes itself requires,
# built in the same module from a main that calls etcdmain.Main.
set -euo pipefail

CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
KUBE_VERSION=v1.34.4
STAGING_VERSION=v0.34.4
DIR=$CACHE/kube-$KUBE_VERSION
KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

missing() {
  local b
  for b in "${KUBE_CMDS[@]}" etcd; do
    [ -x "$DIR/$b" ] || echo "$b"
  done
}

if [ -z "$(missing)" ]; then
  echo "$DIR"
  exit 0
fi

mkdir -p "$CACHE"
# One build at a time: engineers and CI jobs may share the cache.
exec 9>"$CACHE/kube-$KUBE_VERSION.lock"
flock 9
todo=$(missing)
if [ -z "$todo" ]; then
  echo "$DIR"
  exit 0
fi

echo "kube-bins: building $(echo $todo) ($KUBE_VERSION) into $DIR; cold, 5-11 min and 3.1 GB of memory on 2 cores" >&2
work=$(mktemp -d /var/tmp/runtimeclassd-kube-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/empty/sample-cli-plugin" "$work/empty/sample-controller" "$work/etcd" "$work/out"

# Staging modules, as listed in k8s.io/kubernetes' own go.mod. The proxy
# lacks $STAGING_VERSION of a few: those are pinned to the nearest patch it
# has, and the two sample modules it has at no version are empty local ones.
staging="api apiextensions-apiserver apimachinery apiserver client-go cloud-provider cluster-bootstrap
  component-base component-helpers controller-manager cri-api cri-client csi-translation-lib
  dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager
  kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission"
{
  echo "module runtimeclassd.local/kube-bins"
  echo
  echo "go 1.24.0"
  echo
  echo "godebug default=go1.24"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes $KUBE_VERSION"
  echo "	go.etcd.io/etcd/server/v3 v3.6.4"
  echo ")"
  echo
  echo "replace ("
  for m in $staging; do
    echo "	k8s.io/$m => k8s.io/$m $STAGING_VERSION"
  done
  for m in cli-runtime code-generator kube-proxy sample-apiserver; do
    echo "	k8s.io/$m => k8s.io/$m v0.34.2"
  done
  echo "	k8s.io/sample-cli-plugin => ./empty/sample-cli-plugin"
  echo "	k8s.io/sample-controller => ./empty/sample-controller"
  echo ")"
} >"$work/go.mod"
echo "module k8s.io/sample-cli-plugin" >"$work/empty/sample-cli-plugin/go.mod"
echo "module k8s.io/sample-controller" >"$work/empty/sample-controller/go.mod"
cat >"$work/etcd/main.go" <<'EOF'
// Command etcd is etcd's server, for the cluster e2e.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF

pkgs=()
for b in $todo; do
  case $b in
    etcd) pkgs+=(./etcd) ;;
    *) pkgs+=("k8s.io/kubernetes/cmd/$b") ;;
  esac
done
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
start=$SECONDS
(
  cd "$work"
  export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOWORK=off
  echo "kube-bins: downloading modules and compiling ${pkgs[*]}" >&2
  go build -p 2 -trimpath -ldflags "$ldflags" -o out/ "${pkgs[@]}"
) >&2
mkdir -p "$DIR"
for b in $todo; do
  mv "$work/out/$b" "$DIR/$b"
done
echo "kube-bins: built in $((SECONDS - start)) s" >&2
echo "$DIR"
