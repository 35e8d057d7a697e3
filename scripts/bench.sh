#!/usr/bin/env bash
# make bench: (1) the Go benchmark of apply's in-process work on containerd's
# default configs with 1, 10, 100 and 1000 handlers, with the per-handler
# cost so that linearity can be read off; (2) `runtimeclassd apply --dry-run`
# against `nvidia-ctk runtime configure --runtime=containerd --dry-run` on
# the same file, as whole processes, measured by hyperfine in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
NVCTK_DIR=$CACHE/nvidia-ctk-v1.20.2
scripts/deps.sh hyperfine >/dev/null
if [ ! -x "$NVCTK_DIR/nvidia-ctk" ]; then
  echo "bench: building nvidia-ctk v1.20.2 into $NVCTK_DIR" >&2
  (cd "$(mktemp -d)" && GOFLAGS= GOBIN="$NVCTK_DIR" go install github.com/NVIDIA/nvidia-container-toolkit/cmd/nvidia-ctk@v1.20.2)
fi

echo "== Go benchmark: ctrdconfig.Patch (parse, place, render, re-check) =="
go test ./ctrdconfig -run '^$' -bench BenchmarkPatch -benchtime 2s -count 1 | tee /tmp/runtimeclassd-bench.txt
awk '/ns\/handler/ { split($1, p, "/"); key = p[2] "/" p[3]; n = p[4]; sub("handlers=", "", n); sub("-[0-9]+$", "", n);
       for (i = 1; i <= NF; i++) if ($(i+1) == "ns/handler") v = $i; per[key, n] = v; keys[key] = 1 }
     END { print "\nlinearity: cost per handler at 1000 handlers / at 100 handlers (1.0 = perfectly linear)";
           for (k in keys) printf "  %-32s %.2f\n", k, per[k, 1000] / per[k, 100] }' /tmp/runtimeclassd-bench.txt

echo
echo "== Whole process: runtimeclassd apply --dry-run vs nvidia-ctk runtime configure --dry-run =="
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/policy.d" "$work/etc"
containerd config default > "$work/etc/config.toml"
cat > "$work/policy.d/nvidia.toml" <<'POL'
# The same stanza nvidia-ctk writes, pointed at a binary this machine has.
[handlers.nvidia]
runtime_type = "io.containerd.runc.v2"
[handlers.nvidia.options]
BinaryName = "/usr/bin/runc"
POL
rcd="bin/runtimeclassd --config /dev/null --containerd-config $work/etc/config.toml --policy-dir $work/policy.d --state-dir $work/state --containerd-bin /usr/bin/containerd"
hyperfine -N --warmup 5 --runs 60 --export-markdown "$work/result.md" \
  -n "runtimeclassd apply --dry-run (validated by containerd 1.6)" "$rcd apply --dry-run" \
  -n "runtimeclassd apply --dry-run (validated by containerd 2.4.2)" "${rcd/\/usr\/bin\/containerd/$CACHE/containerd-v2.4.2/containerd} apply --dry-run" \
  -n "runtimeclassd apply --dry-run --no-validate (like for like)" "$rcd apply --dry-run --no-validate" \
  -n "nvidia-ctk runtime configure --dry-run" "$NVCTK_DIR/nvidia-ctk runtime configure --runtime=containerd --config=$work/etc/config.toml --dry-run" \
  -n "containerd 1.6 config dump alone" "/usr/bin/containerd --config $work/etc/config.toml config dump"
cat "$work/result.md"
