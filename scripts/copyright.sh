#!/usr/bin/env bash
# Writes the package's copyright file (Debian's machine-readable format) to
# stdout: runtimeclassd's own licence, then, for every Go module linked
# into the binaries it ships, that module's licence text as the module
# ships it (MIT and BSD licences ask for their notice to go with binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
modcache=$(go env GOMODCACHE)
cat <<HEAD
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: runtimeclassd
Upstream-Contact: runtimeclassd developers <dev@runtimeclassd.invalid>
Source: https://github.com/runtimeclassd/runtimeclassd
Comment: The binaries are statically linked Go programs. Besides
 runtimeclassd's own code they hold the Go standard library and the Go
 modules listed below, each under the licence that follows it.

Files: *
Copyright: 2026 runtimeclassd developers
License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may
 not use this file except in compliance with the License. You may obtain a
 copy of the License at http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
 WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
 License for the specific language governing permissions and limitations
 under the License.
 .
 On Debian systems, the full text of the Apache License, Version 2.0 can be
 found in /usr/share/common-licenses/Apache-2.0.
HEAD

# indent: a licence text as a DEP-5 field continuation.
indent() { sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /'; }

goroot=$(go env GOROOT)
printf '\nFiles: go/*\nCopyright: The Go Authors\nLicense: BSD-3-Clause\n'
indent <"$goroot/LICENSE"

go list -deps -f '{{with .Module}}{{.Path}}@{{.Version}}{{end}}' ./cmd/runtimeclassd ./packaging/generator |
  sort -u | grep -v '^github.com/runtimeclassd/runtimeclassd@' | while IFS=@ read -r path version; do
  # The module cache escapes upper case letters as !lower.
  dir=$modcache/$(printf '%s' "$path" | sed 's/[A-Z]/!\L&/g')@$version
  lic=$(ls "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* 2>/dev/null | head -1 || true)
  if [ -z "$lic" ]; then
    echo "copyright: no licence file in $dir" >&2
    exit 1
  fi
  text=$(head -c 12000 "$lic")
  case $text in
  *"Apache License"*) name=Apache-2.0 ;;
  *"Mozilla Public License"*) name=MPL-2.0 ;;
  *"Neither the name"* | *"names of its contributors"*) name=BSD-3-Clause ;;
  *"Redistribution and use in source and binary forms"*) name=BSD-2-Clause ;;
  *"Permission is hereby granted, free of charge"*) name=Expat ;;
  *)
    echo "copyright: unknown licence in $lic" >&2
    exit 1
    ;;
  esac
  holder=$(grep -m1 -i -E '^[[:space:]]*copyright[[:space:]]+(\(c\)|©|[0-9])' "$lic" | sed -E 's/^[[:space:]]*[Cc]opyright[[:space:]]+(\([cC]\)[[:space:]]*|©[[:space:]]*)?//' || true)
  printf '\nFiles: vendor/%s/*\nCopyright: %s\nComment: Go module %s %s\nLicense: %s\n' \
    "$path" "${holder:-the authors of $path}" "$path" "$version" "$name"
  if [ "$name" = Apache-2.0 ]; then
    echo " On Debian systems, the full text of the Apache License, Version 2.0 can be"
    echo " found in /usr/share/common-licenses/Apache-2.0."
  else
    indent <"$lic"
  fi
done
