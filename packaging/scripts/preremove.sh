#!/bin/sh
# Stop the service on removal (not on upgrade). The handlers it wrote stay
# in containerd's config, since pods may use them: run `runtimeclassd
# revert` first to remove them.
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now runtimeclassd.service >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
