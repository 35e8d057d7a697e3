#!/usr/bin/env bash
# Drop-in mode side by side with nvidia-ctk's drop-in, on the same config
# (containerd 2.4.2's default), in one run (issue 11, docs/BENCHMARKS.md):
#   - bytes changed in config.toml;
#   - settings frozen: keys the drop-in sets besides the handler's own, which
#     then override config.toml for as long as the drop-in exists;
#   - whole-process time (hyperfine, the files restored before each run).
# Needs make build, nvidia-ctk v1.20.2 (make bench installs it) and hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${RUNTIMECLASSD_CACHE:-/var/tmp/runtimeclassd-cache}
NVCTK=${NVCTK:-$CACHE/nvidia-ctk-v1.20.2/nvidia-ctk}
CTRD2=$(scripts/deps.sh hyperfine | tail -1)
RCD=$PWD/bin/runtimeclassd
for f in "$NVCTK" "$CTRD2" "$RCD"; do
  [ -x "$f" ] || { echo "dropin-compare: $f missing (make build; make bench installs nvidia-ctk)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One handler each, the same runtime: nvidia-ctk's defaults (name nvidia,
# the runc v2 shim, BinaryName nvidia-container-runtime), and the same
# stanza as a policy. The binary is a stand-in that passes the host checks.
mkdir -p "$work/policy.d" "$work/host/usr/bin"
printf '[handlers.nvidia]\nruntime_type = "io.containerd.runc.v2"\n[handlers.nvidia.options]\nBinaryName = "/usr/bin/runc"\n' >"$work/policy.d/nvidia.toml"

setup() { # DIR: a fresh etc/containerd with the default config, importing DIR/conf.d as /etc/containerd's does
  rm -rf "$1" && mkdir -p "$1/conf.d" && sed "s|/etc/containerd/conf.d|$1/conf.d|" "$work/default.toml" >"$1/config.toml"
}
nv() { # DIR
  "$NVCTK" runtime configure --runtime=containerd --config="$1/config.toml" \
    --drop-in-config="$1/conf.d/99-nvidia.toml" >/dev/null 2>&1
}
rcd() { # DIR
  "$RCD" apply --no-restart --mode drop-in --config /dev/null --containerd-bin "$CTRD2" \
    --containerd-config "$1/config.toml" --drop-in "$1/conf.d/50-runtimeclassd.toml" \
    --policy-dir "$work/policy.d" --state-dir "$1.state" --nfd-feature-file= >/dev/null 2>&1
}
changed() { # ORIG NEW: bytes removed or added (a minimal diff), and lines
  python3 - "$1" "$2" <<'EOF'
import sys, difflib
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
n = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if op != "equal")
la, lb = a.decode().splitlines(), b.decode().splitlines()
l = sum(1 for d in difflib.unified_diff(la, lb, lineterm="", n=0) if d[:1] in "+-" and d[:3] not in ("+++", "---"))
print(f"{n} bytes, {l} lines")
EOF
}
frozen() { # DROPIN HANDLER: leaf keys outside the handler's own table
  python3 - "$1" "$2" <<'EOF'
import sys, tomllib
d = tomllib.load(open(sys.argv[1], "rb"))
def leaves(t, path):
    for k, v in t.items():
        p = path + [k]
        if isinstance(v, dict):
            yield from leaves(v, p)
        else:
            yield p
n = [p for p in leaves(d, []) if sys.argv[2] not in p and p != ["version"]]
print(len(n))
EOF
}

compare() { # TITLE CONFIG
  cp "$2" "$work/default.toml"
  setup "$work/nv" && cp "$work/nv/config.toml" "$work/nv.orig" && nv "$work/nv"
  setup "$work/rcd" && cp "$work/rcd/config.toml" "$work/rcd.orig" && rcd "$work/rcd"
  echo "== $1 ($(wc -l <"$2") lines, $(comments "$2") comment lines), one handler"
  printf '%-36s %-24s %-10s %-16s %s\n' "" "config.toml changed" "drop-in" "settings frozen" "comment lines kept"
  printf '%-36s %-24s %-10s %-16s %s\n' "nvidia-ctk --drop-in-config" "$(changed "$work/nv.orig" "$work/nv/config.toml")" \
    "$(wc -l <"$work/nv/conf.d/99-nvidia.toml") lines" "$(frozen "$work/nv/conf.d/99-nvidia.toml" nvidia)" "$(comments "$work/nv/config.toml")"
  printf '%-36s %-24s %-10s %-16s %s\n' "runtimeclassd apply --mode drop-in" "$(changed "$work/rcd.orig" "$work/rcd/config.toml")" \
    "$(wc -l <"$work/rcd/conf.d/50-runtimeclassd.toml") lines" "$(frozen "$work/rcd/conf.d/50-runtimeclassd.toml" nvidia)" "$(comments "$work/rcd/config.toml")"
  echo
}
comments() { grep -c '^\s*#' "$1" || true; }
"$CTRD2" config default >"$work/ctrd2-default.toml"
compare "containerd 2.4.2's default config" "$work/ctrd2-default.toml"
compare "a hand-written version 2 config (ctrdconfig/testdata/configs/v2-handwritten.toml)" ctrdconfig/testdata/configs/v2-handwritten.toml
cp "$work/ctrd2-default.toml" "$work/default.toml"
echo "== whole process, the files restored before each run (runtimeclassd has containerd check the result; nvidia-ctk checks nothing)"
export -f setup nv rcd
export work NVCTK RCD CTRD2
hyperfine -N --warmup 5 --runs 40 --style basic \
  --prepare "bash -c 'setup $work/nv'" -n "nvidia-ctk runtime configure --drop-in-config" "bash -c 'nv $work/nv'" \
  --prepare "bash -c 'setup $work/rcd; rm -rf $work/rcd.state'" -n "runtimeclassd apply --mode drop-in --no-restart" "bash -c 'rcd $work/rcd'" \
  --prepare "bash -c 'setup $work/nv'" -n "of which: containerd config dump (its check of the result)" "bash -c '$CTRD2 --config $work/nv/config.toml config dump >/dev/null'"
