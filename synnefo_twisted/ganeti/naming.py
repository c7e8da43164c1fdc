# -*- test-case-name: tests.ganeti.test_naming -*-
"""
Ganeti object names used by Synnefo (spec §2.1) and the AMQP routing keys
derived from them (spec §2.3).
"""

from __future__ import annotations

DEFAULT_PREFIX = "snf-"


class InvalidBackendIdError(ValueError):
    """
    A Ganeti name does not carry a Synnefo id with the expected prefix.
    """


def instanceName(vmId: int, prefix: str = DEFAULT_PREFIX) -> str:
    """
    The Ganeti instance name of a server, C{snf-<id>}.
    """
    return f"{prefix}{vmId}"


def networkName(networkId: int, prefix: str = DEFAULT_PREFIX) -> str:
    """
    The Ganeti network name of a network, C{snf-net-<id>}.
    """
    return f"{prefix}net-{networkId}"


def nicName(nicId: int, prefix: str = DEFAULT_PREFIX) -> str:
    """
    The Ganeti NIC name of a port, C{snf-nic-<id>}.
    """
    return f"{prefix}nic-{nicId}"


def volumeName(volumeId: int, prefix: str = DEFAULT_PREFIX) -> str:
    """
    The Ganeti disk name of a volume, C{snf-vol-<id>}.
    """
    return f"{prefix}vol-{volumeId}"


def _idAfter(name: str, start: str) -> int:
    if not name.startswith(start):
        raise InvalidBackendIdError(f"{name!r} does not start with {start!r}")
    rest = name[len(start) :]
    if not rest.isdigit() or not rest.isascii():
        raise InvalidBackendIdError(f"{name!r}: {rest!r} is not a decimal id")
    return int(rest)


def idFromInstanceName(name: str, prefix: str = DEFAULT_PREFIX) -> int:
    """
    The server id in an instance name C{snf-<id>}.

    @raise InvalidBackendIdError: other prefix, or a non-numeric rest.
    """
    return _idAfter(name, prefix)


def idFromNetworkName(name: str, prefix: str = DEFAULT_PREFIX) -> int:
    """
    The network id in C{snf-net-<id>}.

    @raise InvalidBackendIdError: when C{name} is not such a name.
    """
    return _idAfter(name, f"{prefix}net-")


def idFromNicName(name: str, prefix: str = DEFAULT_PREFIX) -> int:
    """
    The port id in C{snf-nic-<id>}.

    @raise InvalidBackendIdError: when C{name} is not such a name.
    """
    return _idAfter(name, f"{prefix}nic-")


def routingPrefix(name: str) -> str:
    """
    The routing-key prefix for messages about a Ganeti object: the part of
    its name before the first dash, as snf-ganeti-eventd does (C{snf-42}
    gives C{snf}; a name without a dash is used whole).
    """
    return name.split("-", 1)[0]


def opRoutingKey(instance: str) -> str:
    """
    C{ganeti.<prefix>.event.op} for an instance name.
    """
    return f"ganeti.{routingPrefix(instance)}.event.op"


def networkRoutingKey(network: str) -> str:
    """
    C{ganeti.<prefix>.event.network} for a network name.
    """
    return f"ganeti.{routingPrefix(network)}.event.network"


def netRoutingKey(instance: str) -> str:
    """
    C{ganeti.<prefix>.event.net}, used by the (historical) hook's
    C{ganeti-net-status} messages.
    """
    return f"ganeti.{routingPrefix(instance)}.event.net"


def progressRoutingKey(instance: str) -> str:
    """
    C{ganeti.<prefix>.event.progress} for snf-progress-monitor messages.
    """
    return f"ganeti.{routingPrefix(instance)}.event.progress"


CLUSTER_ROUTING_KEY = "ganeti.event.cluster"
HEARTBEAT_ROUTING_KEY = "eventd.heartbeat"
EXCHANGE = "ganeti"
