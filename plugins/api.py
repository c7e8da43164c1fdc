"""
The C{api} plugin: the compute, identity (and later network, image, vmapi)
HTTP APIs on API server nodes (L{web.app}).

Section C{[api]}:
  - C{listen}: the HTTP listener (Twisted endpoint);
  - C{base_url}: the public URL of the API, used in the service catalog and links;
  - C{seed_demo}: on start, create the demo flavors and image, and a demo
    user (token logged) when there are no users yet.
  - C{console_control}: the VNC proxy's control socket as a Twisted client
    endpoint (C{tcp:host=H:port=P}, or C{tls:...} for a TLS control socket);
  - C{console_user}, C{console_secret_file}: the control user and the file
    holding its password (first line; relative paths are under
    C{[node] state_dir}; C{make run} creates both);
  - C{console_page_url}: the noVNC page of C{os-getVNCConsole} URLs
    (default C{<base_url>/ui/console});
  - C{vmapi_url}: the base of the servers' C{config_url} (default
    C{<base_url>/vmapi/v1.0/server-params});
  - C{server_params_lifetime}, C{password_lifetime}: seconds the creation
    parameters and the admin password of a new server stay readable;
  - C{fqdn_template}: C{SNF:fqdn} of servers, e.g. C{snf-{id}.vm.example.org};
  - C{stats_url}: base of the statistics graph URLs (empty: no statistics);
  - C{changes_since_limit}: the oldest C{changes-since} accepted (seconds);
  - C{shared_resources}: servers may be shared to their project's members;
  - C{image_file_roots}: directories below which users of the image API
    may register local image files;
  - C{network_types}: network types users may create with the network API
    (Synnefo's C{API_ENABLED_NETWORK_FLAVORS}; admins may create every type);
  - C{default_bridge}, C{default_mac_prefix}, C{mac_filtered_bridge},
    C{max_cidr_block}: the links and MAC prefix of new networks and the
    largest IPv4 subnet (C{/max_cidr_block});
  - C{mac_prefix_pool_base}, C{mac_prefix_pool_size}, C{bridge_pool_base},
    C{bridge_pool_size}: the MAC-prefix pool (MAC_FILTERED networks) and
    bridge pool (PHYSICAL_VLAN networks), created at start when missing
    (existing pools are kept; resize them with snf-manage);
  - C{public_network_cidr}: with C{seed_demo}, the subnet of the public
    network (a floating-IP pool) seeded when there is none (empty: none);
  - C{default_server_networks}, C{forced_server_networks}: Synnefo's
    C{CYCLADES_DEFAULT_SERVER_NETWORKS} (the NICs of a server whose
    create names no networks) and C{CYCLADES_FORCED_SERVER_NETWORKS}
    (always added, first). Items: a network id, C{SNF:ANY_PUBLIC_IPV4},
    C{SNF:ANY_PUBLIC_IPV6}, C{SNF:ANY_PUBLIC}, or a group of those joined
    by C{|} (the first usable one), see L{synnefo_twisted.logic.servernets}.
"""

from __future__ import annotations

import attrs
from twisted.application.service import IService
from twisted.plugin import IPlugin
from zope.interface import implementer

from synnefo_twisted.config import Setting, checkEndpoint, checkNonNegative, checkPositive
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import ISynnefoPlugin


def checkClientEndpoint(value: str) -> str | None:
    from twisted.internet.endpoints import clientFromString

    try:
        clientFromString(None, value)
    except (ValueError, TypeError, KeyError) as e:
        return f"is not a Twisted client endpoint: {e}"
    return None


def checkBaseURL(value: str) -> str | None:
    if not value.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL"
    return None


def checkNetworkTypes(value: list[str]) -> str | None:
    from synnefo_twisted.logic.networks import FLAVORS

    bad = [t for t in value if t not in FLAVORS]
    if bad:
        return f"{bad[0]!r} is not a network type (one of {', '.join(sorted(FLAVORS))})"
    return None


def checkMacPrefix(value: str) -> str | None:
    import re

    if re.fullmatch(r"[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]", value) is None or int(value[:2], 16) & 1:
        return "must be a unicast MAC prefix of five hex digits like aa:00:0"
    return None


def checkCidr(value: str) -> str | None:
    import ipaddress

    if not value:
        return None
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return "must be an IPv4 CIDR such as 203.0.113.0/24 (or empty)"
    if not 22 <= network.prefixlen <= 29:
        return "must be from /22 to /29"
    return None


def checkCidrBlock(value: int) -> str | None:
    if not 0 < value <= 29:
        return "must be a prefix length from 1 to 29"
    return None


def checkServerNetworks(value: list[str]) -> str | None:
    from synnefo_twisted.logic.servernets import checkNetworkChoices

    return checkNetworkChoices(value)


def checkAbsolutePaths(value: list[str]) -> str | None:
    bad = [p for p in value if not p.startswith("/")]
    if bad:
        return f"{bad[0]!r} is not an absolute path"
    return None


SETTINGS: tuple[Setting, ...] = (
    Setting("listen", "str", "tcp:8080:interface=127.0.0.1", "HTTP listener endpoint", check=checkEndpoint),
    Setting("base_url", "str", "http://127.0.0.1:8080", "public URL of the API (catalog, links)", check=checkBaseURL),
    Setting("seed_demo", "bool", True, "create demo flavors, image and (with no users yet) a demo user at start"),
    Setting(
        "console_control",
        "str",
        "tcp:host=127.0.0.1:port=24999",
        "VNC proxy control socket (Twisted client endpoint)",
        check=checkClientEndpoint,
    ),
    Setting("console_user", "str", "console", "VNC proxy control user"),
    Setting(
        "console_secret_file",
        "str",
        "vncproxy-console.secret",
        "file holding the control user's password (relative: under state_dir)",
    ),
    Setting("console_page_url", "str", "", "noVNC page for os-getVNCConsole (default <base_url>/ui/console)"),
    Setting("vmapi_url", "str", "", "base of config_url (default <base_url>/vmapi/v1.0/server-params)"),
    Setting(
        "server_params_lifetime",
        "float",
        86400,
        "seconds a new server's creation parameters stay readable",
        check=checkPositive,
    ),
    Setting(
        "password_lifetime", "float", 86400, "seconds a new server's admin password stays readable", check=checkPositive
    ),
    Setting("fqdn_template", "str", "", "SNF:fqdn of servers, e.g. snf-{id}.vm.example.org (empty: null)"),
    Setting("stats_url", "str", "", "base URL of server statistics graphs (empty: statistics disabled)"),
    Setting("changes_since_limit", "float", 3600, "oldest changes-since accepted, seconds", check=checkPositive),
    Setting(
        "listing_staleness",
        "float",
        0.05,
        "seconds other processes' writes may take to show in listings reused while nothing changed"
        " (this node's own writes show at once; 0: a change-stamp query per listing)",
        check=checkNonNegative,
    ),
    Setting("shared_resources", "bool", False, "servers may be shared to the members of their project"),
    Setting(
        "image_file_roots",
        "list[str]",
        ["/var/lib/snf-image"],
        "directories below which API users may register file:// images ([] refuses them)",
        check=checkAbsolutePaths,
    ),
    Setting(
        "network_types",
        "list[str]",
        ["MAC_FILTERED"],
        "network types users may create (admins: every type)",
        check=checkNetworkTypes,
    ),
    Setting("default_bridge", "str", "br0", "link of CUSTOM networks"),
    Setting("default_mac_prefix", "str", "aa:00:0", "MAC prefix of networks not MAC_FILTERED", check=checkMacPrefix),
    Setting("mac_filtered_bridge", "str", "prv0", "link of MAC_FILTERED networks"),
    Setting("max_cidr_block", "int", 22, "largest IPv4 subnet users may create (prefix length)", check=checkCidrBlock),
    Setting("mac_prefix_pool_base", "str", "aa:00:0", "first MAC prefix of the pool", check=checkMacPrefix),
    Setting("mac_prefix_pool_size", "int", 65536, "MAC prefixes in the pool", check=checkPositive),
    Setting("bridge_pool_base", "str", "prv", "bridge name prefix of the bridge pool (PHYSICAL_VLAN)"),
    Setting("bridge_pool_size", "int", 20, "bridges in the pool", check=checkPositive),
    Setting(
        "public_network_cidr",
        "str",
        "203.0.113.0/24",
        "with seed_demo: subnet of the seeded public network (empty: none)",
        check=checkCidr,
    ),
    Setting(
        "default_server_networks",
        "list[str]",
        [],
        "NICs of a server created without networks: network ids, SNF:ANY_PUBLIC_IPV4, SNF:ANY_PUBLIC_IPV6,"
        ' SNF:ANY_PUBLIC, or groups of those joined by | (the first usable), e.g. ["5|SNF:ANY_PUBLIC_IPV4"]',
        check=checkServerNetworks,
    ),
    Setting(
        "forced_server_networks",
        "list[str]",
        [],
        "NICs every new server gets first (items as default_server_networks)",
        check=checkServerNetworks,
    ),
)


@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class APIPlugin:
    name: str = "api"
    roles: frozenset[str] = frozenset({"apiserver"})
    description: str = "compute, identity, network and image APIs (Cyclades/Astakos compatible) on Klein"
    requires: frozenset[str] = frozenset({"database", "ganeti"})
    startOrder: int = 60
    section: str | None = "api"
    settings: tuple[Setting, ...] = SETTINGS

    def makeService(self, node: object) -> IService:
        assert isinstance(node, NodeContext)
        from pathlib import Path

        from twisted.internet.endpoints import clientFromString

        from synnefo_twisted.logic.networkops import networkActivator
        from synnefo_twisted.logic.networks import NetworkDefaults, allocateServerPortIP
        from synnefo_twisted.logic.servernets import parseNetworkChoices
        from synnefo_twisted.logic.serverops import ServerOptions
        from synnefo_twisted.logic.servers import CreateSettings
        from web.console import SecretFileBroker
        from web.service import APIService

        s = node.settings
        base = s["base_url"].rstrip("/")
        secretFile = Path(s["console_secret_file"])
        if not secretFile.is_absolute():
            secretFile = Path(node.stateDir) / secretFile
        broker = SecretFileBroker(
            node.reactor, clientFromString(node.reactor, s["console_control"]), s["console_user"], secretFile
        )
        options = ServerOptions(
            create=CreateSettings(prefix=node.backends.prefix if node.backends is not None else "snf-"),
            ipAllocator=allocateServerPortIP,
            activateNetwork=networkActivator(node.database, node.backends) if node.backends is not None else None,
            vmapiURL=s["vmapi_url"] or f"{base}/vmapi/v1.0/server-params",
            clock=node.reactor,
            paramsLifetime=float(s["server_params_lifetime"]),
            passwordLifetime=float(s["password_lifetime"]),
            defaultNetworks=parseNetworkChoices(s["default_server_networks"]),
            forcedNetworks=parseNetworkChoices(s["forced_server_networks"]),
        )
        servers = {
            "fqdnTemplate": s["fqdn_template"] or None,
            "consolePageURL": s["console_page_url"] or f"{base}/ui/console",
            "sharingEnabled": s["shared_resources"],
            "statsURL": s["stats_url"],
            "pollLimit": float(s["changes_since_limit"]),
        }
        return APIService(
            node.reactor,
            node.database,
            s["listen"],
            s["base_url"],
            seedDemo=s["seed_demo"],
            backends=node.backends,
            consoleBroker=broker,
            serverOptions=options,
            serverSettings=servers,
            imageFileRoots=s["image_file_roots"],
            networkDefaults=NetworkDefaults(
                default_bridge=s["default_bridge"],
                default_mac_prefix=s["default_mac_prefix"],
                default_mac_filtered_bridge=s["mac_filtered_bridge"],
                enabledFlavors=frozenset(s["network_types"]),
                maxCidrBlock=int(s["max_cidr_block"]),
            ),
            publicNetworkCidr=s["public_network_cidr"],
            listingStaleness=float(s["listing_staleness"]),
            resourcePools={
                "macPrefixBase": s["mac_prefix_pool_base"],
                "macPrefixSize": int(s["mac_prefix_pool_size"]),
                "bridgeBase": s["bridge_pool_base"],
                "bridgeSize": int(s["bridge_pool_size"]),
            },
        )


api = APIPlugin()
