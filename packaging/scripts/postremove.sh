#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
# On purge, drop the state and backups; containerd's config is left as is.
if [ "$1" = "purge" ]; then
  rm -rf /var/lib/runtimeclassd
fi
exit 0
