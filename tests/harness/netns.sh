#!/bin/bash
# Network namespaces for the dhcp responder's real-client tests and benchmark.
#
#   tests/harness/netns.sh up   ID DIR [QUEUES]   build everything (QUEUES: dhcp,rs,ns,dhcpv6; default 142,143,144,145)
#   tests/harness/netns.sh down ID                delete the namespaces (and with them every link, bridge and rule)
#   tests/harness/netns.sh setup                  idempotent: install what the tests need (Debian packages), then check
#   tests/harness/netns.sh check                  exit 0 if this machine can do it (root, tools)
#
# Names are unique per ID (the caller passes e.g. its pid): snfdID-host and
# snfdID-vm1..4. Nothing is configured in the root namespace.
#
#   snfdID-host : the "hypervisor": taps, bridge br0, NFQUEUE rules, the responder
#     tap1 (routed)            <-> snfdID-vm1:eth0  02:00:00:00:01:01  binding 192.0.2.10, 2001:db8:1::/64
#     tap2 (bridged, in br0)   <-> snfdID-vm2:eth0  02:00:00:00:02:01  binding 198.51.100.20, 2001:db8:2::/64, INDEV=br0
#     tap3 (routed, MACSPOOF)  <-> snfdID-vm3:eth0  any MAC            binding 203.0.113.30 (load generator)
#     tap4 (routed)            <-> snfdID-vm4:eth0  02:00:00:00:04:01  NO binding (passthrough)
# Binding files go to DIR/bindings; DIR/env has the names for the caller.
# Addresses are documentation ranges (RFC 5737, RFC 3849), only ever used inside these namespaces.
set -euo pipefail
ACTION=${1:?up|down|setup|check}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
# tool -> Debian package, for the responder tests (iptables), the real clients and the benchmark baseline
PACKAGES="ip:iproute2 iptables-restore:iptables ip6tables-restore:iptables dhclient:isc-dhcp-client busybox:busybox ndisc6:ndisc6 dnsmasq:dnsmasq-base unshare:util-linux"

missing() {
    local out="" pair
    for pair in $PACKAGES; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || out="$out ${pair#*:}"
    done
    echo $out | tr ' ' '\n' | sort -u | tr '\n' ' '
}

if [ "$ACTION" = setup ] || [ "$ACTION" = check ]; then
    [ "$(id -u)" = 0 ] || { echo "netns harness: not root (namespaces, iptables and NFQUEUE need it)"; exit 1; }
    need=$(missing)
    if [ -n "${need// /}" ] && [ "$ACTION" = setup ]; then
        echo "netns harness: installing $need"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null || {
            apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null; } || exit 1
        need=$(missing)
    fi
    [ -z "${need// /}" ] || { echo "netns harness: missing packages: $need"; exit 1; }
    modprobe br_netfilter 2>/dev/null || true
    echo "netns harness: ready"
    exit 0
fi

ID=${2:?id}
HOST=snfd$ID-host

if [ "$ACTION" = down ]; then
    NSS="snfd$ID-vm1 snfd$ID-vm2 snfd$ID-vm3 snfd$ID-vm4 $HOST"
    # whatever still runs inside these namespaces was started in them by the
    # caller (clients, responder): stop it before the namespaces go
    pids=$(for ns in $NSS; do ip netns pids $ns 2>/dev/null; done)
    [ -n "$pids" ] && kill $pids 2>/dev/null && sleep 0.3
    pids=$(for ns in $NSS; do ip netns pids $ns 2>/dev/null; done)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    for ns in $NSS; do
        ip netns del $ns 2>/dev/null || true
    done
    exit 0
fi

DIR=${3:?dir}
QUEUES=${4:-142,143,144,145}
mkdir -p "$DIR/bindings"

ip netns add $HOST
ip -n $HOST link set lo up
ip -n $HOST link add br0 address 02:fe:00:00:00:99 type bridge
ip -n $HOST link set br0 up

mkvm() {  # mkvm N VM-MAC
    local n=$1 mac=$2 vm=snfd$ID-vm$1
    ip netns add $vm
    ip -n $vm link set lo up
    ip -n $HOST link add tap$n address 02:fe:00:00:0$n:01 type veth peer name eth0 address $mac netns $vm
    ip -n $HOST link set tap$n up
    # the VM side is brought up by the test, so that its RS and DAD happen while the responder runs
}
mkvm 1 02:00:00:00:01:01
mkvm 2 02:00:00:00:02:01
mkvm 3 02:00:00:00:03:01
mkvm 4 02:00:00:00:04:01
ip -n $HOST link set tap2 master br0
# the gateways answer ARP on the host side (snf-network does it with arptables
# and proxy ARP in routed mode), so that unicast renewals reach the queue
ip -n $HOST addr add 192.0.2.1/24 dev tap1
ip -n $HOST addr add 198.51.100.1/24 dev br0
ip -n $HOST addr add 203.0.113.1/24 dev tap3

# bridged taps: netfilter sees bridged frames only with br_netfilter (per netns sysctls)
modprobe br_netfilter 2>/dev/null || true
ip netns exec $HOST sysctl -q -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1

IFS=, read -r Q4 QRS QNS Q6 <<<"$QUEUES"
ip netns exec $HOST "$PY" -m dhcp.rules 4 --queues "$QUEUES" | ip netns exec $HOST iptables-restore -w --noflush
ip netns exec $HOST "$PY" -m dhcp.rules 6 --queues "$QUEUES" | ip netns exec $HOST ip6tables-restore -w --noflush

cat > "$DIR/bindings/tap1" <<EOF
INDEV=tap1
IP=192.0.2.10
MAC=02:00:00:00:01:01
HOSTNAME=vm1.test.example
TAGS=""
GATEWAY=192.0.2.1
SUBNET=192.0.2.0/24
GATEWAY6=2001:db8:1::1
SUBNET6=2001:db8:1::/64
EUI64=2001:db8:1::ff:fe00:101
EOF
cat > "$DIR/bindings/tap2" <<EOF
INDEV=br0
IP=198.51.100.20
MAC=02:00:00:00:02:01
HOSTNAME=vm2.test.example
GATEWAY=198.51.100.1
SUBNET=198.51.100.0/24
GATEWAY6=2001:db8:2::1
SUBNET6=2001:db8:2::/64
MTU=1400
EOF
cat > "$DIR/bindings/tap3" <<EOF
INDEV=tap3
IP=203.0.113.30
MAC=02:00:00:00:03:01
HOSTNAME=vm3.test.example
GATEWAY=203.0.113.1
SUBNET=203.0.113.0/24
MACSPOOF=1
EOF

cat > "$DIR/env" <<EOF
HOST=$HOST
VM1=snfd$ID-vm1
VM2=snfd$ID-vm2
VM3=snfd$ID-vm3
VM4=snfd$ID-vm4
QUEUES=$QUEUES
EOF
