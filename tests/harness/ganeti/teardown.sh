#!/bin/bash
# tests/harness/ganeti/teardown.sh - undo tests/harness/ganeti.sh (also: tests/harness/ganeti.sh --teardown).
#   teardown.sh           remove instances, destroy the cluster, stop daemons,
#                         remove lab config (hosts entries, bridge, namespace,
#                         noop OS, hooks, RAPI users); keep the packages.
#   teardown.sh --purge   additionally "apt-get purge" the ganeti packages.
# Only processes recorded in Ganeti's own pidfiles are stopped (daemon-util).
set -uo pipefail

UTS_NS=${UTS_NS:-/run/ganeti-lab/uts}
BRIDGE=${BRIDGE:-gnt-br0}
LAB_DIR=${LAB_DIR:-/usr/local/lib/ganeti-lab}
PURGE=0; [ "${1:-}" = --purge ] && PURGE=1
log() { echo "[teardown] $*"; }
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }

in_ns() {
  if findmnt -n -o FSTYPE "$UTS_NS" 2>/dev/null | grep -q nsfs; then
    nsenter --uts="$UTS_NS" "$@"
  else
    "$@"
  fi
}

if [ -s /var/lib/ganeti/config.data ] && command -v gnt-instance >/dev/null; then
  # daemons must be up for an orderly destroy
  in_ns /usr/lib/ganeti/daemon-util start-all >/dev/null 2>&1 || true
  for inst in $(in_ns gnt-instance list --no-headers -o name 2>/dev/null); do
    log "removing instance $inst"
    in_ns gnt-instance remove --force --ignore-failures --shutdown-timeout=0 "$inst" >/dev/null 2>&1 || \
      log "  (failed to remove $inst)"
  done
  log "gnt-cluster destroy"
  in_ns gnt-cluster destroy --yes-do-it 2>&1 | sed 's/^/  /' || true
fi

# Stop whatever Ganeti daemons are still running (pidfile based, ours only).
if [ -x /usr/lib/ganeti/daemon-util ]; then
  in_ns /usr/lib/ganeti/daemon-util stop-all >/dev/null 2>&1 || true
fi

log "removing Ganeti state (/var/lib/ganeti, /var/run/ganeti, file storage)"
rm -rf /var/lib/ganeti/* /var/run/ganeti/* /srv/ganeti/file-storage
rm -f /etc/ganeti/file-storage-paths

log "removing lab OS definition, hooks, helpers"
rm -rf /srv/ganeti/os/noop
find /etc/ganeti/hooks -name '50-ganeti-lab-dump-env' -delete 2>/dev/null || true
find /etc/ganeti/hooks -name '50-dump-env' -delete 2>/dev/null || true
find /etc/ganeti/hooks -name 'snf-ganeti-hook*' -delete 2>/dev/null || true
find /etc/ganeti/hooks -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -f /usr/local/sbin/ganeti-lab-hook-dump /usr/local/sbin/gnt-ns
rm -rf "$LAB_DIR" /var/log/ganeti-lab-hooks

if [ -f /etc/default/ganeti.ganeti-lab-orig ]; then
  log "restoring /etc/default/ganeti"
  mv /etc/default/ganeti.ganeti-lab-orig /etc/default/ganeti
fi

if [ -d /sys/class/net/$BRIDGE ]; then
  log "deleting bridge $BRIDGE"
  ip link del "$BRIDGE" || true
fi

if findmnt -n "$UTS_NS" >/dev/null 2>&1; then
  log "releasing UTS namespace $UTS_NS"
  umount "$UTS_NS" || true
fi
rm -f "$UTS_NS"; rmdir "$(dirname "$UTS_NS")" 2>/dev/null || true

if grep -q '^# ganeti-lab begin' /etc/hosts; then
  log "removing /etc/hosts entries"
  # edit in place (keeps inode; /etc/hosts may be bind-mounted)
  tmp=$(mktemp); sed '/^# ganeti-lab begin/,/^# ganeti-lab end/d' /etc/hosts > "$tmp"
  cat "$tmp" > /etc/hosts; rm -f "$tmp"
fi

if [ "$PURGE" = 1 ]; then
  log "purging ganeti packages"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 purge -y \
    ganeti ganeti-3.0 ganeti-haskell-3.0 ganeti-htools-3.0 >/dev/null || true
  rm -rf /var/lib/ganeti /var/log/ganeti /etc/ganeti
fi
log "done"
