# Run "gnt-cluster init" with two lab-only relaxations needed because the node and
# cluster addresses live in 127.0.0.0/8 (loopback aliases):
#  1. Ganeti refuses a node IP that is a loopback address.
#  2. Its "cluster IP already active" probe treats ECONNREFUSED as "host alive",
#     and every 127.x address answers (refuses) locally.
import sys

sys.path.insert(0, "/usr/share/ganeti/default")
from ganeti import netutils

netutils.IP4Address.IsLoopback = classmethod(lambda cls, address: False)
_orig_tcpping = netutils.TcpPing


def _TcpPing(target, port, timeout=10, live_port_needed=False, source=None):
    return _orig_tcpping(target, port, timeout=timeout, live_port_needed=True, source=source)


netutils.TcpPing = _TcpPing
import ganeti.client.gnt_cluster as main  # noqa: E402  (after the patches above)

sys.argv[0] = "gnt-cluster"
sys.exit(main.Main())
