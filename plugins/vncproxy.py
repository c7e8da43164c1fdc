"""
The C{vncproxy} plugin: the VNC console proxy (snf-vncauthproxy's
replacement) on API server nodes.

Section C{[vncproxy]}:
  - C{control_listen}: the control socket (Twisted endpoint; TLS when cert_file and key_file are set);
  - C{proxy_listen_address}: where viewers connect (C{*}/C{::} for every address, IPv4 and IPv6);
  - C{proxy_public_address}: the host put in replies (default: the listen address, or the FQDN for a wildcard);
  - C{port_range}: the pool of viewer ports;
  - C{users_file}: control users, C{user:$6$...} lines (C{snf-vncproxy-users}); reloaded on change;
    a relative path is under C{[node] state_dir};
  - C{connect_timeout}: seconds a viewer has to connect, then to authenticate;
  - C{server_timeout}: seconds to connect to the VNC server and finish its handshake;
  - C{cert_file}, C{key_file}: PEM files for C{vnc-wss} and the control socket.
"""

from __future__ import annotations

from pathlib import Path

import attrs
from twisted.application.service import IService
from twisted.plugin import IPlugin
from zope.interface import implementer

from synnefo_twisted.config import Setting, checkEndpoint, checkPortRange, checkPositive
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import ISynnefoPlugin

SETTINGS: tuple[Setting, ...] = (
    Setting("control_listen", "str", "tcp:24999:interface=127.0.0.1", "control socket endpoint", check=checkEndpoint),
    Setting("proxy_listen_address", "str", "127.0.0.1", "address viewers connect to (* or :: for all)"),
    Setting("proxy_public_address", "str", "", "host name put in replies (default: listen address or FQDN)"),
    Setting("port_range", "list[int]", [25000, 30000], "ports for forwardings [low, high]", check=checkPortRange),
    Setting("users_file", "str", "/var/lib/vncauthproxy/users", "control users (user:$6$... lines)"),
    Setting(
        "connect_timeout",
        "float",
        30,
        "seconds a viewer has to connect (and then to authenticate)",
        check=checkPositive,
    ),
    Setting(
        "server_timeout", "float", 60, "seconds to reach the VNC server and finish its handshake", check=checkPositive
    ),
    Setting("cert_file", "str", "", "PEM certificate for vnc-wss and the control socket"),
    Setting("key_file", "str", "", "PEM private key for vnc-wss and the control socket"),
)


@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class VNCProxyPlugin:
    name: str = "vncproxy"
    roles: frozenset[str] = frozenset({"apiserver"})
    description: str = "VNC console proxy: one-time forwardings for viewers and noVNC (snf-vncauthproxy)"
    requires: frozenset[str] = frozenset()
    startOrder: int = 50
    section: str | None = "vncproxy"
    settings: tuple[Setting, ...] = SETTINGS

    def makeService(self, node: object) -> IService:
        assert isinstance(node, NodeContext)
        from vncproxy.service import ProxyConfig, VNCProxy, VNCProxyService, loadTLSContext
        from vncproxy.users import UsersFile

        s = node.settings
        tls = None
        if s["cert_file"] and s["key_file"]:
            tls = loadTLSContext(s["cert_file"], s["key_file"])
        elif s["cert_file"] or s["key_file"]:
            raise ValueError("[vncproxy] cert_file and key_file must be set together")
        low, high = s["port_range"]
        config = ProxyConfig(
            listenAddress=s["proxy_listen_address"],
            publicAddress=s["proxy_public_address"],
            portLow=low,
            portHigh=high,
            connectTimeout=float(s["connect_timeout"]),
            serverTimeout=float(s["server_timeout"]),
        )
        usersFile = Path(s["users_file"])
        if not usersFile.is_absolute():
            usersFile = Path(node.stateDir) / usersFile
        proxy = VNCProxy(node.reactor, UsersFile(usersFile), config, tlsContext=tls, metrics=node.metrics)
        return VNCProxyService(node.reactor, proxy, s["control_listen"], controlTLS=tls)


vncproxy = VNCProxyPlugin()
