# -*- test-case-name: tests.dhcp.test_ifup -*-
"""
The binding-file part of Ganeti's C{kvm-ifup-custom} / C{kvm-ifdown-custom}
(what snf-network's C{setup_nfdhcpd} does, spec §6.1).

Ganeti runs the script with the NIC in the environment: C{INSTANCE},
C{INTERFACE} (the tap), C{MAC}, C{IP}, C{MODE} (routed, bridged,
openvswitch), C{LINK} (routing table or bridge), C{NETWORK_SUBNET},
C{NETWORK_GATEWAY}, C{NETWORK_SUBNET6}, C{NETWORK_GATEWAY6},
C{NETWORK_TAGS} and C{TAGS}.

C{snf-dhcp-ifup up} first removes any previous binding of the tap, then,
when the network carries the C{nfdhcpd} tag, writes the new one
atomically (a hidden temporary file renamed into place, mode 0644, so the
responder's inotify watch sees one complete file). C{snf-dhcp-ifup down}
removes it. The action is also taken from the program name
(C{kvm-ifup-custom} / C{kvm-ifdown-custom}), so the script can be
installed or linked under Ganeti's names, or called from an existing
C{kvm-ifup-custom} after it has set up the interface.

The bindings directory is C{$NFDHCPD_STATE_DIR} (snf-network's variable),
else C{--bindings-dir}, else C{/var/lib/nfdhcpd}.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dhcp.binding import formatBinding
from dhcp.packet import macFromText, slaacAddress

NFDHCPD_TAG = "nfdhcpd"
DEFAULT_DIR = "/var/lib/nfdhcpd"


class IfupError(Exception):
    """
    The environment lacks something the binding needs.
    """


def bindingValues(env: Mapping[str, str]) -> dict[str, str]:
    """
    The KEY=value pairs of the binding file for this NIC, in snf-network's
    order.

    @raise IfupError: when INTERFACE or MAC is missing or malformed.
    """
    tap = env.get("INTERFACE", "")
    if not tap:
        raise IfupError("INTERFACE is not set")
    mac = env.get("MAC", "")
    try:
        macBytes = macFromText(mac)
    except ValueError:
        raise IfupError(f"MAC {mac!r} is not a MAC address") from None
    mode = env.get("MODE", "routed")
    indev = env.get("LINK", "") if mode in ("bridged", "openvswitch") else tap
    if not indev:
        raise IfupError(f"MODE={mode} needs LINK (the bridge)")
    eui64 = ""
    subnet6 = env.get("NETWORK_SUBNET6", "")
    if subnet6:
        try:
            network = ipaddress.IPv6Network(subnet6, strict=False)
        except ValueError:
            raise IfupError(f"NETWORK_SUBNET6 {subnet6!r} is not an IPv6 network") from None
        if network.prefixlen == 64:
            eui64 = str(slaacAddress(macBytes, network))
    return {
        "INDEV": indev,
        "IP": env.get("IP", ""),
        "MAC": mac.lower(),
        "HOSTNAME": env.get("INSTANCE", ""),
        "TAGS": '"' + env.get("TAGS", "") + '"',
        "GATEWAY": env.get("NETWORK_GATEWAY", ""),
        "SUBNET": env.get("NETWORK_SUBNET", ""),
        "GATEWAY6": env.get("NETWORK_GATEWAY6", ""),
        "SUBNET6": subnet6,
        "EUI64": eui64,
    }


def wantsBinding(env: Mapping[str, str]) -> bool:
    return NFDHCPD_TAG in env.get("NETWORK_TAGS", "").split()


def removeBinding(directory: Path, tap: str) -> None:
    try:
        (directory / tap).unlink()
    except FileNotFoundError:
        pass


def writeBinding(directory: Path, tap: str, values: Mapping[str, str]) -> Path:
    """
    Write the binding atomically (temporary file + rename).
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / tap
    tmp = directory / f".{tap}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(formatBinding(dict(values)))
        f.flush()
        os.fchmod(f.fileno(), 0o644)
    os.replace(tmp, target)
    return target


def ifup(env: Mapping[str, str], directory: Path) -> Path | None:
    """
    Clear the tap's previous binding; write the new one if the network is
    tagged C{nfdhcpd}. Returns the file written, if any.
    """
    tap = env.get("INTERFACE", "")
    if not tap:
        raise IfupError("INTERFACE is not set")
    if "/" in tap or tap.startswith("."):
        raise IfupError(f"INTERFACE {tap!r} is not an interface name")
    removeBinding(directory, tap)
    if not wantsBinding(env):
        return None
    return writeBinding(directory, tap, bindingValues(env))


def ifdown(env: Mapping[str, str], directory: Path) -> None:
    tap = env.get("INTERFACE", "")
    if not tap or "/" in tap or tap.startswith("."):
        raise IfupError("INTERFACE is not set or not an interface name")
    removeBinding(directory, tap)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """
    Console script C{snf-dhcp-ifup [up|down] [--bindings-dir DIR]}.
    """
    argv = list(sys.argv if argv is None else argv)
    env = os.environ if environ is None else environ
    program = os.path.basename(argv[0]) if argv else "snf-dhcp-ifup"
    action = None
    if program.startswith("kvm-ifdown"):
        action = "down"
    elif program.startswith("kvm-ifup"):
        action = "up"
    rest = argv[1:]
    if rest and rest[0] in ("up", "down"):
        action = rest.pop(0)
    parser = argparse.ArgumentParser(
        prog=program, usage=f"{program} up|down [--bindings-dir DIR]", description="the nfdhcpd binding of a Ganeti NIC"
    )
    parser.add_argument("--bindings-dir", default=None)
    # Ganeti passes the interface name as an argument to kvm-if*-custom: ignored (INTERFACE is used)
    args, _ = parser.parse_known_args(rest)
    if action is None:
        parser.error("say up or down")
    directory = Path(env.get("NFDHCPD_STATE_DIR") or args.bindings_dir or DEFAULT_DIR)
    try:
        if action == "up":
            written = ifup(env, directory)
            if written is not None:
                print(f"{program}: wrote {written}")
        else:
            ifdown(env, directory)
    except (IfupError, OSError) as e:
        print(f"{program}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
