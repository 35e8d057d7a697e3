#!/usr/bin/env bash
# Lints dist/*.deb with lintian and dist/*.rpm with rpmlint. Fails on any
# error or warning that packaging/lintian-overrides and packaging/rpmlint.toml
# don't explain.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(ls dist/*.deb) rpm=$PWD/$(ls dist/*.rpm)
status=0

echo "== lintian $deb" >&2
# Shown with the overrides and their reasons; the status comes from a run
# without them (lintian counts shown overrides as failures).
lintian --tag-display-limit 0 --show-overrides "$deb" 2>&1 | grep -v '^running with root privileges' >&2 || true
lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || status=1

# rpmlint unpacks the payload with rpm2cpio | cpio -id: a member named by
# an absolute path would be written into /. Ours are relative (see
# scripts/package.sh); make sure before running it, in a scratch directory.
echo "== rpmlint $rpm" >&2
if rpm2cpio "$rpm" | cpio -t --quiet | grep -v '^\./'; then
  echo "lint: $rpm has payload members with absolute paths (above); not running rpmlint on it" >&2
  exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# rpmlint takes one -c: a directory of *.toml files.
mkdir "$scratch/conf" "$scratch/work"
cp packaging/rpmlint.toml "$scratch/conf/"
case $rpm in
*~git*)
  # A development build (0.0.0~gitHASH) has no changelog entry of its own;
  # a release build (a vX.Y.Z tag) must.
  printf 'Filters = ["incoherent-version-in-changelog"]\n' >"$scratch/conf/zz-devbuild.toml"
  ;;
esac
out=$(cd "$scratch/work" && TMPDIR=$scratch/work rpmlint -c "$scratch/conf" "$rpm" 2>&1) || true
echo "$out" >&2
if grep -qE ': [EW]: ' <<<"$out" || ! grep -q ' 0 errors, 0 warnings' <<<"$out"; then
  status=1
fi
exit $status
