# -*- test-case-name: tests.ganeti.test_scripts -*-
"""
C{snf-ganeti-hook}: a Ganeti hook (the seeds' GANETI-MASTER hook,
historical ≤0.12) that publishes an instance's NICs as a
C{ganeti-net-status} message (spec §2.3), so that NIC state reaches the
dispatcher even without the watcher.

Install it, by symlink, in Ganeti's C{instance-{add,modify,reboot,start,stop}-post.d}
hook directories::

    snf-ganeti-hook install [--hooks-dir /etc/ganeti/hooks] [--target PATH]

It runs on the master only, in the post phase; C{instance-stop} is a no-op.
When the bus cannot be reached after bounded retries it says so on stderr
and exits 0 at once: a hook must never block Ganeti.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.task import react

from synnefo_twisted.ganeti import events, naming
from synnefo_twisted.ganeti.scriptbus import Unpublished, loadScriptConfig, nowEventTime, publishAll

HOOK_PATHS = ("instance-add", "instance-modify", "instance-reboot", "instance-start", "instance-stop")
PUBLISHING_PATHS = frozenset({"instance-add", "instance-modify", "instance-reboot", "instance-start"})
HOOK_NAME = "snf-ganeti-hook"


def mac2eui64(mac: str, prefix: str) -> str | None:
    """
    The EUI-64 IPv6 address of a MAC in a /64 prefix (as snf-network's
    C{mac2eui64}), or None when either is malformed.
    """
    import ipaddress

    try:
        network = ipaddress.IPv6Network(prefix, strict=False)
        octets = [int(x, 16) for x in mac.split(":")]
    except ValueError:
        return None
    if len(octets) != 6:
        return None
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    suffix = int.from_bytes(bytes(eui), "big")
    return str(ipaddress.IPv6Address(int(network.network_address) | suffix))


def nicsFromEnv(env: Mapping[str, str], ipv6Prefix: str | None = None) -> list[dict[str, Any]]:
    """
    The instance's NICs from C{GANETI_INSTANCE_NIC<i>_*}, with the firewall
    profile from the instance tags and, for NIC 0, the EUI-64 IPv6 address
    when a public IPv6 prefix is configured.
    """
    count = int(env.get("GANETI_INSTANCE_NIC_COUNT") or 0)
    firewalls = events.firewallProfiles((env.get("GANETI_INSTANCE_TAGS") or "").split())
    nics = []
    for i in range(count):
        get = lambda key, i=i: env.get(f"GANETI_INSTANCE_NIC{i}_{key}") or None  # noqa: E731
        nic: dict[str, Any] = {
            "index": i,
            "name": get("NAME"),
            "mac": get("MAC"),
            "ip": get("IP"),
            "mode": get("MODE"),
            "link": get("LINK") or get("BRIDGE"),
            "network": get("NETWORK_NAME"),
            "uuid": get("UUID"),
        }
        for key in (nic["name"], str(i), nic["uuid"]):
            if key and key in firewalls:
                nic["firewall"] = firewalls[key]
                break
        if i == 0 and ipv6Prefix and nic["mac"]:
            nic["ipv6"] = mac2eui64(nic["mac"], ipv6Prefix)
        nics.append(nic)
    return nics


def netStatusMessage(
    env: Mapping[str, str], now: float, ipv6Prefix: str | None = None
) -> tuple[str, dict[str, Any]] | None:
    """
    The routing key and C{ganeti-net-status} body for a hook run, or None
    when this run publishes nothing (pre phase, stop, no instance).
    """
    if env.get("GANETI_HOOKS_PHASE") != "post" or env.get("GANETI_HOOKS_PATH") not in PUBLISHING_PATHS:
        return None
    instance = env.get("GANETI_INSTANCE_NAME") or env.get("GANETI_POST_INSTANCE_NAME")
    if not instance:
        return None
    body = {
        "type": "ganeti-net-status",
        "instance": instance,
        "nics": nicsFromEnv(env, ipv6Prefix),
        "operation": env.get("GANETI_OP_CODE"),
        "cluster": env.get("GANETI_CLUSTER"),
        "event_time": nowEventTime(now),
    }
    return naming.netRoutingKey(instance), body


def isMaster(env: Mapping[str, str]) -> bool:
    """
    Whether this node is the one Ganeti names master (no name: assume so).
    """
    master = env.get("GANETI_MASTER")
    return not master or master in (socket.getfqdn(), socket.gethostname())


def installHooks(hooksDir: str, target: str, name: str = HOOK_NAME) -> list[str]:
    """
    Symlink C{target} as C{<hooksDir>/<path>-post.d/<name>} for every hook
    path; idempotent. Returns the links made or corrected.
    """
    import re

    if not re.match(r"^[a-zA-Z0-9_-]+$", name):
        raise ValueError(f"hook name {name!r} must match ^[a-zA-Z0-9_-]+$ or Ganeti ignores it")
    changed = []
    for path in HOOK_PATHS:
        directory = os.path.join(hooksDir, f"{path}-post.d")
        os.makedirs(directory, exist_ok=True)
        link = os.path.join(directory, name)
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
        changed.append(link)
    return changed


def uninstallHooks(hooksDir: str, name: str = HOOK_NAME) -> list[str]:
    """
    Remove the links L{installHooks} made.
    """
    removed = []
    for path in HOOK_PATHS:
        link = os.path.join(hooksDir, f"{path}-post.d", name)
        if os.path.islink(link):
            os.remove(link)
            removed.append(link)
    return removed


async def runHook(reactor: Any, env: Mapping[str, str], stderr: Any, attempts: int = 3, timeout: float = 2.0) -> int:
    """
    One hook run. Always 0: problems are reported on stderr only.
    """
    if not isMaster(env):
        return 0
    try:
        config = loadScriptConfig(env)
    except Exception as e:
        stderr.write(f"{HOOK_NAME}: cannot read the configuration ({e}); nothing published\n")
        return 0
    message = netStatusMessage(env, time.time(), env.get("SNF_PUBLIC_IPV6_PREFIX"))
    if message is None:
        return 0
    try:
        await publishAll(reactor, config.busUrl, [message], attempts=attempts, timeout=timeout)
    except Unpublished as e:
        stderr.write(f"{HOOK_NAME}: {e}; NIC state of {message[1]['instance']} not published\n")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """
    Console script C{snf-ganeti-hook}: run as a Ganeti hook (no arguments),
    or C{install}/C{uninstall} the hook links.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("install", "uninstall"):
        import argparse

        parser = argparse.ArgumentParser(prog=f"{HOOK_NAME} {args[0]}")
        parser.add_argument("--hooks-dir", default="/etc/ganeti/hooks")
        parser.add_argument("--target", default=os.path.abspath(sys.argv[0]), help="what the links point to")
        parser.add_argument("--name", default=HOOK_NAME)
        options = parser.parse_args(args[1:])
        if args[0] == "install":
            done = installHooks(options.hooks_dir, options.target, options.name)
        else:
            done = uninstallHooks(options.hooks_dir, options.name)
        for link in done:
            print(f"{args[0]}ed {link}" if args[0] == "install" else f"removed {link}")
        sys.exit(0)

    async def run(reactor: Any) -> None:
        code = await runHook(reactor, os.environ, sys.stderr)
        if code:
            raise SystemExit(code)

    react(
        lambda reactor: __import__("twisted.internet.defer", fromlist=["Deferred"]).Deferred.fromCoroutine(run(reactor))
    )


if __name__ == "__main__":
    main()
