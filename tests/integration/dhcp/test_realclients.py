"""
The dhcp responder against real clients, in network namespaces built by
C{tests/harness/netns.sh}: the responder runs as C{twistd synnefo --plugin
dhcp} in the "hypervisor" namespace; ISC dhclient, busybox udhcpc, the
kernel's SLAAC and ndisc6 run in the "VM" namespaces.

Needs root (namespaces, iptables, NFQUEUE) and the Debian packages
iptables, isc-dhcp-client, busybox, ndisc6 (see the report to the lead).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parents[3]
HARNESS = ROOT / "tests" / "harness" / "netns.sh"
SCRIPTS = ROOT / "tests" / "harness" / "netns"
VENV_BIN = ROOT / ".venv" / "bin"
TOOLS = ("ip", "iptables-restore", "ip6tables-restore", "dhclient", "busybox", "ndisc6", "unshare")
QUEUES = "142,143,144,145"
_counter = itertools.count()


def run(*args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=check)


def readEnv(path: Path) -> list[dict[str, str]]:
    """
    The records a client script appended (one per event).
    """
    if not path.exists():
        return []
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "reason" and current:
            records.append(current)
            current = {}
        current[key] = value
    if current:
        records.append(current)
    return records


class Lab:
    """
    One set of namespaces with the responder running in the host one.
    """

    def __init__(self, test: SynchronousTestCase, **dhcp: object) -> None:
        self.test = test
        self.id = f"{os.getpid() % 100000}x{next(_counter)}"
        self.dir = Path(test.mktemp()).resolve()
        self.dir.mkdir(parents=True)
        for script in ("dhclient-script", "udhcpc-script"):
            shutil.copy(SCRIPTS / script, self.dir / script)
        test.addCleanup(self.teardown)
        run(str(HARNESS), "up", self.id, str(self.dir), QUEUES)
        self.host = f"snfd{self.id}-host"
        self.vm = {n: f"snfd{self.id}-vm{n}" for n in (1, 2, 3, 4)}
        self.pidfiles: list[Path] = []
        self.responder: subprocess.Popen[bytes] | None = None
        q = QUEUES.split(",")
        settings = {
            "bindings_dir": f'"{self.dir / "bindings"}"',
            "dhcp_queue": q[0],
            "rs_queue": q[1],
            "ns_queue": q[2],
            "dhcpv6_queue": q[3],
            "nameservers": '["192.0.2.53", "2001:db8::53"]',
            "ipv6_mode": '"slaac+dhcpv6"',
            "lease_lifetime": "120",
            "lease_renewal": "60",
            "ra_period": "30",
        }
        settings.update({k: str(v) for k, v in dhcp.items()})
        (self.dir / "synnefo.toml").write_text(
            "[node]\nroles = []\n"
            f'state_dir = "{self.dir / "var"}"\n'
            'admin_listen = "tcp:0:interface=127.0.0.1"\n'
            "[dhcp]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        )
        self.logCount = 0
        self.startResponder()

    def startResponder(self) -> None:
        self.logCount += 1
        self.log = self.dir / f"responder-{self.logCount}.log"
        out = open(self.log, "wb")
        self.responder = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.host,
                str(VENV_BIN / "twistd"),
                "-n",
                "--pidfile=",
                "synnefo",
                "--config",
                str(self.dir / "synnefo.toml"),
                "--plugin",
                "dhcp",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )
        out.close()
        self.waitFor(lambda: "dhcp responder running" in self.log.read_text(), 30, "responder start")

    def stopResponder(self) -> None:
        if self.responder is not None and self.responder.poll() is None:
            self.responder.send_signal(signal.SIGTERM)
            try:
                self.responder.wait(10)
            except subprocess.TimeoutExpired:
                self.responder.kill()
                self.responder.wait()
        self.responder = None

    def waitFor(self, condition, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return
            if self.responder is not None and self.responder.poll() is not None:
                self.test.fail(f"responder exited while waiting for {what}:\n{self.log.read_text()}")
            time.sleep(0.1)
        self.test.fail(f"timed out waiting for {what}; responder log:\n{self.log.read_text()}")

    def vmUp(self, n: int) -> None:
        run("ip", "-n", self.vm[n], "link", "set", "eth0", "up")

    def dhclient(self, n: int, *extra: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
        tag = "6" if "-6" in extra else "4"
        pidfile = self.dir / f"vm{n}-dhclient{tag}.pid"
        result = run(
            "ip",
            "netns",
            "exec",
            self.vm[n],
            "unshare",
            "-u",
            "dhclient",
            *(extra or ("-4",)),
            "-v",
            "-sf",
            str(self.dir / "dhclient-script"),
            "-lf",
            str(self.dir / f"vm{n}-dhclient{tag}.leases"),
            "-pf",
            str(pidfile),
            "eth0",
            timeout=timeout,
            check=False,
        )
        self.pidfiles.append(pidfile)
        return result

    def clientEvents(self, n: int, client: str = "dhclient") -> list[dict[str, str]]:
        return readEnv(self.dir / f"{self.vm[n]}-{client}.env")

    def addresses(self, n: int, family: str = "-4") -> str:
        return run("ip", "-n", self.vm[n], family, "addr", "show", "dev", "eth0").stdout

    def routes(self, n: int, family: str = "-4") -> str:
        return run("ip", "-n", self.vm[n], family, "route").stdout

    def teardown(self) -> None:
        for pidfile in self.pidfiles:
            # dhclient writes its pid file after it has gone to the background
            for _ in range(20):
                text = pidfile.read_text().strip() if pidfile.exists() else ""
                if text:
                    try:
                        os.kill(int(text), signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                    break
                time.sleep(0.05)
        self.stopResponder()
        run(str(HARNESS), "down", self.id, check=False)


class RealClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        if os.geteuid() != 0:
            raise self.skipTest("network namespaces, iptables and NFQUEUE need root")
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing:
            self.fail(f"missing tools {missing}: apt-get install iptables isc-dhcp-client busybox ndisc6")

    def test_dhclientRouted(self) -> None:
        """
        ISC dhclient on a routed tap obtains exactly the bound address,
        netmask, gateway, DNS server, hostname and domain, and configures
        them.
        """
        lab = Lab(self)
        lab.vmUp(1)
        result = lab.dhclient(1, "-4", "-1")
        self.assertIn("DHCPACK of 192.0.2.10 from 192.0.2.1", result.stderr)
        bound = [e for e in lab.clientEvents(1) if e["reason"] == "BOUND"][-1]
        self.assertEqual(
            {k: bound[k] for k in ("ip", "mask", "routers", "dns", "hostname", "domain", "lease", "server")},
            {
                "ip": "192.0.2.10",
                "mask": "255.255.255.0",
                "routers": "192.0.2.1",
                "dns": "192.0.2.53",
                "hostname": "vm1.test.example",
                "domain": "test.example",
                "lease": "120",
                "server": "192.0.2.1",
            },
        )
        self.assertIn("inet 192.0.2.10/24", lab.addresses(1))
        self.assertIn("default via 192.0.2.1 dev eth0", lab.routes(1))

    def test_udhcpcBridged(self) -> None:
        """
        busybox udhcpc behind a bridge (the tap is a bridge port, matched by
        physdev) obtains the bound address, gateway, DNS, hostname, domain
        and MTU.
        """
        lab = Lab(self)
        result = run(
            "ip", "netns", "exec", lab.vm[2], "unshare", "-u", "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n",
            "-t", "5", "-T", "1", "-s", str(lab.dir / "udhcpc-script"), check=False,
        )  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stderr)
        bound = lab.clientEvents(2, "udhcpc")[-1]
        self.assertEqual(
            {k: bound[k] for k in ("reason", "ip", "mask", "routers", "dns", "hostname", "domain", "mtu", "server")},
            {
                "reason": "bound",
                "ip": "198.51.100.20",
                "mask": "24",
                "routers": "198.51.100.1",
                "dns": "192.0.2.53",
                "hostname": "vm2.test.example",
                "domain": "test.example",
                "mtu": "1400",
                "server": "198.51.100.1",
            },
        )
        self.assertIn("inet 198.51.100.20/24", lab.addresses(2))

    def test_slaacAndNeighborProxy(self) -> None:
        """
        Bringing the VM links up makes the kernels solicit routers: both VMs
        get their SLAAC address and a default route via the host's
        link-local from the RA (the bridged one with the binding's MTU),
        and ndisc6 gets the gateway's NA with the INDEV's MAC (the tap's
        when routed, the bridge's when bridged).
        """
        lab = Lab(self)
        lab.vmUp(1)
        lab.vmUp(2)
        lab.waitFor(lambda: "2001:db8:1::ff:fe00:101/64" in lab.addresses(1, "-6"), 20, "SLAAC on vm1")
        lab.waitFor(lambda: "2001:db8:2::ff:fe00:201/64" in lab.addresses(2, "-6"), 20, "SLAAC on vm2")
        self.assertIn("default via fe80::fe:ff:fe00:101 dev eth0 proto ra", lab.routes(1, "-6"))
        routes2 = lab.routes(2, "-6")
        self.assertIn("default via fe80::fe:ff:fe00:99 dev eth0 proto ra", routes2)
        self.assertIn("mtu 1400", routes2)
        result = run("ip", "netns", "exec", lab.vm[1], "ndisc6", "-1", "-r", "3", "2001:db8:1::1", "eth0", check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("Target link-layer address: 02:FE:00:00:01:01", result.stdout)
        # bridged: the gateway is answered with the bridge's MAC (the binding's INDEV)
        result = run("ip", "netns", "exec", lab.vm[2], "ndisc6", "-1", "-r", "3", "2001:db8:2::1", "eth0", check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("Target link-layer address: 02:FE:00:00:00:99", result.stdout)

    def test_periodicRA(self) -> None:
        """
        A VM that sends no router solicitation still configures SLAAC and
        its default route from the periodic unsolicited RAs.
        """
        lab = Lab(self, ra_period=1)
        run("ip", "netns", "exec", lab.vm[1], "sysctl", "-q", "-w", "net.ipv6.conf.eth0.router_solicitations=0")
        lab.vmUp(1)
        lab.waitFor(lambda: "2001:db8:1::ff:fe00:101/64" in lab.addresses(1, "-6"), 15, "SLAAC from a periodic RA")
        self.assertIn("default via fe80::fe:ff:fe00:101 dev eth0 proto ra", lab.routes(1, "-6"))
        self.assertNotIn("tap1: prefix", lab.log.read_text())  # no solicited RA was sent

    def test_dhcpv6Stateless(self) -> None:
        """
        dhclient -6 -S receives the DNS server and the search list over
        stateless DHCPv6.
        """
        lab = Lab(self)
        lab.vmUp(1)
        lab.waitFor(
            lambda: "tentative" not in lab.addresses(1, "-6") and "fe80::" in lab.addresses(1, "-6"), 20, "link-local"
        )
        result = lab.dhclient(1, "-6", "-S", "-1")
        self.assertIn("RCV: Reply message on eth0", result.stderr)
        events = [e for e in lab.clientEvents(1) if e.get("dns6")]
        self.assertTrue(events, lab.clientEvents(1))
        self.assertEqual((events[-1]["dns6"], events[-1]["search6"]), ("2001:db8::53", "test.example."))

    def test_noBindingPasses(self) -> None:
        """
        A VM whose tap has no binding gets no answer, and its DISCOVERs pass
        on to the host's own stack (a socket on port 67 there receives
        them).
        """
        lab = Lab(self)
        lab.vmUp(4)
        listener = subprocess.Popen(
            ["ip", "netns", "exec", lab.host, str(VENV_BIN / "python"), "-c", LISTENER, "tap4"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert listener.stdout is not None
            self.assertEqual(listener.stdout.readline().strip(), "listening")
            result = run(
                "ip", "netns", "exec", lab.vm[4], "unshare", "-u", "busybox", "udhcpc", "-i", "eth0", "-f", "-q",
                "-n", "-t", "2", "-T", "1", "-s", str(lab.dir / "udhcpc-script"), check=False,
            )  # fmt: skip
            self.assertNotEqual(result.returncode, 0)
            self.assertEqual(lab.clientEvents(4, "udhcpc"), [])
            out, _ = listener.communicate(timeout=15)
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()
        self.assertIn("chaddr 02:00:00:00:04:01", out)

    def test_ifupWhileRunning(self) -> None:
        """
        The Ganeti ifup script, run with a NIC environment while the
        responder runs, writes a binding that inotify picks up: the VM that
        got nothing before now gets its address; after the ifdown script it
        gets nothing again.
        """
        lab = Lab(self)
        lab.vmUp(4)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "INSTANCE": "snf-4",
            "INTERFACE": "tap4",
            "MAC": "02:00:00:00:04:01",
            "IP": "192.0.2.40",
            "MODE": "routed",
            "LINK": "snf_public",
            "NETWORK_SUBNET": "192.0.2.0/24",
            "NETWORK_GATEWAY": "192.0.2.1",
            "NETWORK_TAGS": "ip-less-routed nfdhcpd",
            "TAGS": "",
            "NFDHCPD_STATE_DIR": str(lab.dir / "bindings"),
        }

        def udhcpc() -> int:
            return run(
                "ip", "netns", "exec", lab.vm[4], "unshare", "-u", "busybox", "udhcpc", "-i", "eth0", "-f", "-q",
                "-n", "-t", "3", "-T", "1", "-s", str(lab.dir / "udhcpc-script"), check=False,
            ).returncode  # fmt: skip

        self.assertNotEqual(udhcpc(), 0)
        subprocess.run(
            [str(VENV_BIN / "python"), "-m", "dhcp.ifup", "up"], env=env, check=True, cwd=ROOT, capture_output=True
        )
        lab.waitFor(lambda: "binding tap4" in lab.log.read_text(), 10, "the binding to load")
        self.assertEqual(udhcpc(), 0)
        bound = lab.clientEvents(4, "udhcpc")[-1]
        self.assertEqual((bound["ip"], bound["hostname"], bound["routers"]), ("192.0.2.40", "snf-4", "192.0.2.1"))
        subprocess.run(
            [str(VENV_BIN / "python"), "-m", "dhcp.ifup", "down"], env=env, check=True, cwd=ROOT, capture_output=True
        )
        lab.waitFor(lambda: "binding tap4 removed" in lab.log.read_text(), 10, "the binding to go")
        self.assertNotEqual(udhcpc(), 0)

    def test_restartWhileRenewing(self) -> None:
        """
        The responder restarts while dhclient renews every 2 seconds: the
        renewals during the gap go unanswered, those after it are
        acknowledged, and the VM keeps its address throughout (never
        EXPIRE or a new address).
        """
        lab = Lab(self, lease_lifetime=30, lease_renewal=2)
        lab.vmUp(1)
        lab.dhclient(1, "-4", "-1")
        lab.waitFor(lambda: any(e["reason"] == "RENEW" for e in lab.clientEvents(1)), 15, "a renewal")
        lab.stopResponder()
        stopped = time.time()
        time.sleep(5)
        self.assertIn("inet 192.0.2.10/24", lab.addresses(1))
        lab.startResponder()
        restarted = time.time()
        lab.waitFor(
            lambda: any(e["reason"] == "RENEW" and float(e["time"]) > restarted for e in lab.clientEvents(1)),
            20,
            "a renewal after the restart",
        )
        events = lab.clientEvents(1)
        # An ACK sent just before the responder exited may reach dhclient's
        # script a moment after: only renewals asked for after the stop
        # (one second of grace on a loaded machine; renewals come every 2 s
        # and the gap is 5 s) must go unanswered.
        self.assertFalse(
            [
                e
                for e in events
                if float(e["time"]) > stopped + 1.0 and float(e["time"]) < restarted and e["reason"] == "RENEW"
            ]
        )
        self.assertEqual({e["ip"] for e in events if e["reason"] in ("BOUND", "RENEW", "REBIND")}, {"192.0.2.10"})
        self.assertNotIn("EXPIRE", [e["reason"] for e in events])
        self.assertIn("inet 192.0.2.10/24", lab.addresses(1))


# Runs in the host namespace: print the chaddr of the first DHCP request
# that reaches the host's own UDP stack on the given interface.
LISTENER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sys.argv[1].encode())
s.bind(("", 67))
s.settimeout(12)
print("listening", flush=True)
data, _ = s.recvfrom(2048)
print("chaddr " + data[28:34].hex(":"), flush=True)
"""
