#!/bin/bash
# tests/harness/ganeti.sh - bring up the real single-node Ganeti 3.0 test cluster
# used by tests/integration/ganeti (adapted from the project's lab recipe).
#
# Brings up a single-node Ganeti 3.0 cluster (Debian bookworm
# package, "fake" hypervisor) on this machine, entirely on loopback addresses,
# with the RAPI daemon on https://127.0.0.1:5080 and a RAPI write user.
#
# Idempotent: safe to re-run; on a machine where the cluster already exists it
# only (re)starts missing daemons and re-asserts the configuration.
#
# Design notes (why it looks like this):
#  * Ganeti insists that the node's FQDN is the system hostname and resolves to
#    a non-loopback IP it owns.  To avoid touching the machine's real hostname
#    (other services - e.g. RabbitMQ node names - depend on it) all Ganeti
#    daemons and gnt-* commands run in a private UTS namespace, pinned at
#    $UTS_NS, whose hostname is $NODE_NAME.  Use `gnt-ns CMD...` to run
#    commands inside it.
#  * Node IP and cluster IP are loopback aliases (127.0.1.x) from /etc/hosts.
#    Two checks in "gnt-cluster init" reject that; they are relaxed only for the
#    init call by a tiny Python wrapper (see gnt-cluster-init.py below).  The
#    installed Ganeti code is NOT modified.
#  * All daemons are bound to loopback addresses (see /etc/default/ganeti).
#  * A dummy, down, port-less Linux bridge $BRIDGE satisfies Ganeti's
#    "bridge exists" check for bridged NICs.  No traffic flows anywhere.
#  * A no-op guest OS definition "noop" (/srv/ganeti/os/noop) is installed,
#    because instance creation requires an os_type.
#
# Environment knobs (defaults in brackets):
#   RAPI_USER [gnt-admin]  RAPI_PASS [gnt-secret]   (write access)
#   RAPI_RO_USER [gnt-reader] RAPI_RO_PASS [gnt-reader-secret] (read-only)
#   INSTALL_DEBUG_HOOKS [0]  install env-dumping hooks for instance-* ops,
#                            output in /var/log/ganeti-lab-hooks/
set -euo pipefail
#   --teardown   undo everything (tests/harness/ganeti/teardown.sh; add --purge to remove the packages)
if [ "${1:-}" = --teardown ]; then
  shift
  exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/ganeti/teardown.sh" "$@"
fi

NODE_NAME=${NODE_NAME:-node1.ganeti.lab}
NODE_IP=${NODE_IP:-127.0.1.11}
CLUSTER_NAME=${CLUSTER_NAME:-cluster.ganeti.lab}
CLUSTER_IP=${CLUSTER_IP:-127.0.1.10}
BRIDGE=${BRIDGE:-gnt-br0}
UTS_NS=${UTS_NS:-/run/ganeti-lab/uts}
LAB_DIR=${LAB_DIR:-/usr/local/lib/ganeti-lab}
RAPI_USER=${RAPI_USER:-gnt-admin}
RAPI_PASS=${RAPI_PASS:-gnt-secret}
RAPI_RO_USER=${RAPI_RO_USER:-gnt-reader}
RAPI_RO_PASS=${RAPI_RO_PASS:-gnt-reader-secret}
INSTALL_DEBUG_HOOKS=${INSTALL_DEBUG_HOOKS:-0}
FILE_STORAGE_DIR=/srv/ganeti/file-storage

T0=$(date +%s)
log() { printf '[ganeti %3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }

# ---------------------------------------------------------------- 1. packages
if ! dpkg-query -W -f='${Status}' ganeti 2>/dev/null | grep -q 'install ok installed'; then
  log "installing ganeti (apt)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show ganeti >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=900 update
  fi
  apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends \
    ganeti curl iproute2 util-linux
else
  log "ganeti package already installed: $(dpkg-query -W -f='${Version}' ganeti)"
fi

# ------------------------------------------------------------ 2. name service
if ! grep -q '^# ganeti-lab begin' /etc/hosts; then
  log "adding $NODE_NAME/$CLUSTER_NAME to /etc/hosts"
  # /etc/hosts may be a bind mount (containers): edit in place, never replace.
  cat >> /etc/hosts <<EOF
# ganeti-lab begin
$NODE_IP ${NODE_NAME} ${NODE_NAME%%.*}
$CLUSTER_IP ${CLUSTER_NAME} ${CLUSTER_NAME%%.*}
# ganeti-lab end
EOF
fi

# ------------------------------------------------ 3. daemon defaults (loopback)
DEFAULTS_CONTENT="# Default arguments for Ganeti daemons (written by ganeti-lab setup-ganeti.sh)
# Everything is bound to loopback addresses.
NODED_ARGS=\"-b $NODE_IP\"
RAPI_ARGS=\"-b 127.0.0.1 --require-authentication\"
CONFD_ARGS=\"-b $NODE_IP\"
MOND_ARGS=\"-b $NODE_IP\"
METAD_ARGS=\"-b $NODE_IP -p 8780\"
WCONFD_ARGS=\"\"
LUXID_ARGS=\"\"
KVMD_ARGS=\"\""
if [ "$(cat /etc/default/ganeti 2>/dev/null)" != "$DEFAULTS_CONTENT" ]; then
  log "writing /etc/default/ganeti"
  [ -f /etc/default/ganeti.ganeti-lab-orig ] || cp /etc/default/ganeti /etc/default/ganeti.ganeti-lab-orig 2>/dev/null || true
  printf '%s\n' "$DEFAULTS_CONTENT" > /etc/default/ganeti
fi

# ------------------------------------------------ 4. private UTS namespace
mkdir -p "$(dirname "$UTS_NS")"
if ! findmnt -n -o FSTYPE "$UTS_NS" 2>/dev/null | grep -q nsfs; then
  log "creating persistent UTS namespace $UTS_NS (hostname $NODE_NAME)"
  touch "$UTS_NS"
  unshare --uts="$UTS_NS" hostname "$NODE_NAME"
fi
nsenter --uts="$UTS_NS" hostname "$NODE_NAME"
cat > /usr/local/sbin/gnt-ns <<EOF
#!/bin/sh
# Run a command inside the ganeti-lab UTS namespace (hostname $NODE_NAME).
# e.g.  gnt-ns ganeti-watcher ;  gnt-ns /usr/lib/ganeti/daemon-util check-and-start ganeti-rapi
exec nsenter --uts=$UTS_NS "\$@"
EOF
chmod 755 /usr/local/sbin/gnt-ns

# ------------------------------------------------ 5. dummy bridge for NICs
if [ ! -d /sys/class/net/$BRIDGE/bridge ]; then
  log "creating dummy bridge $BRIDGE (down, no ports, no addresses)"
  ip link add "$BRIDGE" type bridge
fi

# ------------------------------------------------ 6. storage dir + noop OS
mkdir -p "$FILE_STORAGE_DIR" /srv/ganeti/os/noop /etc/ganeti
grep -qxF "$FILE_STORAGE_DIR" /etc/ganeti/file-storage-paths 2>/dev/null || \
  echo "$FILE_STORAGE_DIR" >> /etc/ganeti/file-storage-paths
echo 20 > /srv/ganeti/os/noop/ganeti_api_version
: > /srv/ganeti/os/noop/parameters.list
for s in create export import rename verify; do
  printf '#!/bin/sh\n# no-op guest OS script (ganeti-lab, fake hypervisor)\nexit 0\n' \
    > /srv/ganeti/os/noop/$s
  chmod 755 /srv/ganeti/os/noop/$s
done

# ------------------------------------------------ 7. init or start the cluster
mkdir -p "$LAB_DIR"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
install -m 0644 "$HERE/ganeti/gnt-cluster-init.py" "$LAB_DIR/gnt-cluster-init.py"

if [ ! -s /var/lib/ganeti/config.data ]; then
  log "gnt-cluster init $CLUSTER_NAME"
  /usr/local/sbin/gnt-ns /usr/bin/python3 "$LAB_DIR/gnt-cluster-init.py" init \
    --enabled-hypervisors=fake \
    --no-ssh-init --no-etc-hosts \
    --master-netdev=lo \
    --enabled-disk-templates=diskless,file \
    --file-storage-dir="$FILE_STORAGE_DIR" \
    --nic-parameters="mode=bridged,link=$BRIDGE" \
    -s "$NODE_IP" \
    "$CLUSTER_NAME"
  # Lab-friendly instance policy (defaults demand >=1 GiB disks, >=128M RAM,
  # >=1 NIC, >=1 disk).
  /usr/local/sbin/gnt-ns gnt-cluster modify --ipolicy-bounds-specs \
    'min:disk-size=1,cpu-count=1,disk-count=0,memory-size=32,nic-count=0,spindle-use=0/max:disk-size=1048576,cpu-count=64,disk-count=16,memory-size=1048576,nic-count=8,spindle-use=12'
else
  log "cluster already initialised; starting any stopped daemons"
  # Not "daemon-util start-all" nor "check-and-start": on Debian without
  # systemd both end in "start-stop-daemon --start --pidfile F --startas X"
  # with a pidfile-only match, which bookworm's start-stop-daemon refuses
  # ("matching only on non-root pidfile ... is insecure", exit 2) whenever the
  # pidfile of a non-root daemon (confd, rapi, luxid, wconfd) is still there,
  # e.g. after the daemons were killed. So: a daemon whose pidfile names a
  # live process of that name is left alone; a stale pidfile is removed; then
  # the daemon is started.
  for d in $(/usr/local/sbin/gnt-ns /usr/lib/ganeti/daemon-util list-start-daemons); do
    [ "$d" = ganeti-kvmd ] && continue   # exits at once without KVM; not needed
    pidfile=/var/run/ganeti/$d.pid
    pid=$(cat "$pidfile" 2>/dev/null || true)
    # A killed daemon can linger as a zombie (comm intact, state Z) until
    # its parent reaps it: that one is not running.
    if [ -n "$pid" ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" = "${d:0:15}" ] \
       && [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" != Z ]; then
      continue
    fi
    if [ -e "$pidfile" ]; then
      log "removing stale pidfile of $d (pid '${pid}' is not running)"
      rm -f "$pidfile"
    fi
    log "starting $d"
    /usr/local/sbin/gnt-ns /usr/lib/ganeti/daemon-util start "$d"
  done
fi

# ------------------------------------------------ 8. RAPI users
HA1=$(printf '%s' "$RAPI_USER:Ganeti Remote API:$RAPI_PASS" | md5sum | cut -d' ' -f1)
USERS_CONTENT="# ganeti-lab RAPI users: <user> <password|{HA1}md5(user:Ganeti Remote API:password)> [read|write]
$RAPI_USER {HA1}$HA1 write
$RAPI_RO_USER $RAPI_RO_PASS read"
if [ "$(cat /var/lib/ganeti/rapi/users 2>/dev/null)" != "$USERS_CONTENT" ]; then
  log "writing /var/lib/ganeti/rapi/users ($RAPI_USER: write, $RAPI_RO_USER: read)"
  install -d -o gnt-rapi -g gnt-masterd -m 0750 /var/lib/ganeti/rapi
  tmp=$(mktemp /var/lib/ganeti/rapi/.users.XXXXXX)
  printf '%s\n' "$USERS_CONTENT" > "$tmp"
  chown gnt-rapi:gnt-masterd "$tmp"; chmod 0640 "$tmp"
  mv "$tmp" /var/lib/ganeti/rapi/users   # ganeti-rapi reloads it via inotify
fi

# ------------------------------------------------ 9. optional debug hooks
if [ "$INSTALL_DEBUG_HOOKS" = 1 ]; then
  cat > /usr/local/sbin/ganeti-lab-hook-dump <<'EOF'
#!/bin/sh
# Ganeti hook: dump the environment it receives to /var/log/ganeti-lab-hooks/
d=/var/log/ganeti-lab-hooks
mkdir -p "$d"
f="$d/$(date +%s.%N)-${GANETI_HOOKS_PATH:-unknown}-${GANETI_HOOKS_PHASE:-unknown}.env"
{ echo "# argv: $0 $*"; env | sort; } > "$f"
exit 0
EOF
  chmod 755 /usr/local/sbin/ganeti-lab-hook-dump
  for hp in instance-add instance-start instance-stop instance-reboot instance-remove \
            instance-modify instance-rename instance-reinstall; do
    for ph in pre post; do
      mkdir -p /etc/ganeti/hooks/$hp-$ph.d
      ln -sfn /usr/local/sbin/ganeti-lab-hook-dump /etc/ganeti/hooks/$hp-$ph.d/50-ganeti-lab-dump-env
    done
  done
fi

# ------------------------------------------------ 9b. keep the queue small
# No cron runs ganeti-watcher here, so finished jobs are never archived:
# archive them, so that watchers' start-up rescans stay quick across runs.
finished=$(gnt-job list --no-headers -o id,status 2>/dev/null | awk '$2 ~ /^(success|error|canceled)$/ {print $1}' || true)
if [ -n "$finished" ]; then
  log "archiving $(echo "$finished" | wc -l) finished jobs"
  echo "$finished" | xargs -r gnt-job archive >/dev/null 2>&1 || log "(gnt-job archive failed; continuing)"
fi

# ------------------------------------------------ 10. wait for RAPI
log "waiting for RAPI on https://127.0.0.1:5080"
for i in $(seq 1 120); do
  code=$(curl -sk -o /dev/null -w '%{http_code}' -u "$RAPI_USER:$RAPI_PASS" \
         https://127.0.0.1:5080/2/info || true)
  [ "$code" = 200 ] && break
  sleep 0.5
done
if [ "$code" != 200 ]; then
  echo "RAPI did not come up (last HTTP code '$code'); see /var/log/ganeti/rapi-daemon.log" >&2
  exit 1
fi
log "RAPI up: $(curl -sk -u "$RAPI_USER:$RAPI_PASS" https://127.0.0.1:5080/2/info | \
  /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["name"], "master="+d["master"], "version="+d["software_version"], "hv="+",".join(d["enabled_hypervisors"]))')"
cat >&2 <<EOF
Ganeti test cluster ready.
  RAPI:   https://127.0.0.1:5080  (self-signed cert CN=ganeti.example.com: use -k / verify=False,
          or pin /var/lib/ganeti/rapi.pem)
  write:  $RAPI_USER / $RAPI_PASS      read-only: $RAPI_RO_USER / $RAPI_RO_PASS
  node:   $NODE_NAME ($NODE_IP)   cluster: $CLUSTER_NAME ($CLUSTER_IP)
  OS:     noop     hypervisor: fake     disk templates: diskless, file
  NIC:    mode=bridged link=$BRIDGE (dummy bridge)
  CLI:    gnt-instance/gnt-job/gnt-cluster queries work directly; daemons, gnt-cluster
          init/destroy and ganeti-watcher must run via gnt-ns (private hostname)
  queue:  /var/lib/ganeti/queue/job-N (JSON)   hooks dump: /var/log/ganeti-lab-hooks/
EOF
