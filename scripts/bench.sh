#!/usr/bin/env bash
# make bench: every figure of issue 12 against its peer and its goal, in one
# run, as docs/BENCHMARKS.md describes:
#   1. the real-node figures (make measure's TestMeasureReaction and
#      TestMeasureIdle: reaction, resyncs with nothing to do, idle memory and
#      wake-ups), written as JSON;
#   2. tools/bench (a module of its own, with gonum/plot): the one-shot
#      command against nvidia-ctk and against containerd's config dump,
#      interleaved in one run, the scale series and their fits; it prints
#      the table and rewrites docs/BENCHMARKS.md's results and plots;
#   3. hyperfine's view of the goal 1 pairs, as a cross-check.
# It installs its peers: nvidia-ctk v1.20.2 (go install, cached) and
# hyperfine (Debian). BENCH_E2E=0 skips the real nodes (about 12 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
NVCTK_DIR=$CACHE/nvidia-ctk-v1.20.2
NVCTK=$NVCTK_DIR/nvidia-ctk
CTRD2=$(scripts/deps.sh hyperfine strace | tail -1)
if [ ! -x "$NVCTK" ]; then
  echo "bench: building nvidia-ctk v1.20.2 into $NVCTK_DIR" >&2
  (cd "$(mktemp -d)" && GOFLAGS= GOBIN="$NVCTK_DIR" go install github.com/NVIDIA/nvidia-container-toolkit/cmd/nvidia-ctk@v1.20.2)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

e2e=
if [ "${BENCH_E2E:-1}" != 0 ]; then
  echo "bench: real nodes (reaction, resyncs, idle): about 12 minutes" >&2
  scripts/deps.sh systemd-container debootstrap busybox-static >/dev/null
  scripts/e2e-rootfs.sh
  e2e=$work/e2e.json
  set +e
  RUNTIMECLASSD_DEB=$(ls "$PWD"/dist/*.deb) RUNTIMECLASSD_BIN=$PWD/bin/runtimeclassd RUNTIMECLASSD_MEASURE=1 RUNTIMECLASSD_MEASURE_OUT=$e2e \
    go test -tags e2e -count=1 -timeout 40m -v -run '^(TestMeasureReaction|TestMeasureIdle)$' ./test/e2e 2>&1 |
    grep -E '^\s*(---|\S+_test.go)|^(ok|FAIL)' >&2
  set -e
fi

echo "bench: whole-process figures, interleaved (a few minutes)" >&2
# For the decisions: the same runtimeclassd built position-independent, and
# the command line's shape on flag and on kingpin/v2.
CGO_ENABLED=0 go build -buildmode=pie -trimpath -tags runtimeclassd_lite -ldflags '-s -w' -o "$work/runtimeclassd-pie" ./cmd/runtimeclassd
(cd tools/bench && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/cliflag" ./cliflag &&
  GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/clikingpin" ./clikingpin)
(cd tools/bench && GOWORK=off go run . -rcd "$PWD/../../bin/runtimeclassd" -nvidia-ctk "$NVCTK" \
  -containerd1 /usr/bin/containerd -containerd2 "$CTRD2" ${e2e:+-e2e "$e2e"} -docs "$PWD/../../docs/BENCHMARKS.md" \
  -rcd-pie "$work/runtimeclassd-pie" -cli-flag "$work/cliflag" -cli-kingpin "$work/clikingpin" \
  -packaged-config "$PWD/../../packaging/config.toml")

# hyperfine runs each command's runs together, not interleaved: on a shared
# machine its ratios move with the load; the table above is the figure.
echo
echo "== hyperfine cross-check (not interleaved), goal 1 pairs on containerd 1.6's default config =="
mkdir -p "$work/policy.d"
containerd config default >"$work/config.toml"
printf '[handlers.nvidia]\nruntime_type = "io.containerd.runc.v2"\n[handlers.nvidia.options]\nBinaryName = "/usr/bin/runc"\n' >"$work/policy.d/nvidia.toml"
rcd="bin/runtimeclassd --config /dev/null --containerd-config $work/config.toml --policy-dir $work/policy.d --state-dir $work/state --nfd-feature-file="
hyperfine -N --warmup 10 --runs 100 --style basic \
  -n "runtimeclassd version" "bin/runtimeclassd version" \
  -n "nvidia-ctk --version" "$NVCTK --version" \
  -n "runtimeclassd apply --dry-run --no-validate" "$rcd apply --dry-run --no-validate" \
  -n "nvidia-ctk runtime configure --dry-run" "$NVCTK runtime configure --runtime=containerd --config=$work/config.toml --dry-run" 2>&1 |
  grep -E '^(Benchmark|  Time)'
