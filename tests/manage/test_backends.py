"""
Tests for the backend commands of snf-manage (L{synnefo_twisted.manage.backends}),
checked against the simulated cluster.
"""

from __future__ import annotations

from pathlib import Path

from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    ImageRepository,
    ServerRepository,
    UserRepository,
)
from tests.manage.support import SIM_URL, ManageTestCase


#: a self-signed certificate (any valid PEM will do for the pin)
def _pem() -> bytes:
    from twisted.internet.ssl import Certificate, KeyPair

    key = KeyPair.generate(size=2048)
    return Certificate(key.selfSignedCert(1, CN="cluster.example.org").original).dumpPEM()


def _keyAndPem() -> bytes:
    """
    A key and its certificate in one file, as Ganeti's rapi.pem.
    """
    from twisted.internet.ssl import KeyPair

    key = KeyPair.generate(size=2048)
    both = key.selfSignedCert(2, CN="cluster.example.org").dumpPEM()
    assert b"PRIVATE KEY" in both
    return both


class BackendCommandTests(ManageTestCase):
    def passwordFile(self, password: str = "synnefo-sim") -> str:
        path = Path(self.mktemp())
        path.write_text(password + "\n")
        return str(path)

    async def addSim(self, *extra: str) -> dict:
        return await self.manageJSON(  # type: ignore[no-any-return]
            "backend-add",
            "sim.ganeti.local",
            "--url",
            SIM_URL,
            "--user",
            "synnefo",
            "--password-file",
            self.passwordFile(),
            *extra,
        )

    async def test_addChecksTheCluster(self) -> None:
        """
        backend-add reads the cluster's info through its RAPI (URL, user,
        password from a file) and stores the hypervisor and disk templates
        it reports; the password is stored but never printed.
        """
        self.simulate()
        data = await self.addSim()
        self.assertEqual((data["clustername"], data["rapi_url"], data["tls"]), ("sim.ganeti.local", SIM_URL, "system"))
        self.assertEqual(data["hypervisor"], "fake")  # what the simulated cluster reports
        self.assertIn("drbd", data["disk_templates"])
        self.assertNotIn("password", data)
        backend = await BackendRepository(self.database).get(data["id"])
        assert backend is not None
        self.assertEqual((backend.username, backend.password), ("synnefo", "synnefo-sim"))
        self.assertEqual((backend.mtotal, backend.ctotal), (1024 * 1024, 1024))
        self.assertIsNotNone(backend.resources_updated)

    async def test_addRefusesWrongCredentialsOrName(self) -> None:
        """
        A cluster that refuses the credentials, or that answers with
        another cluster name, is an error and nothing is added.
        """
        self.simulate()
        code, _out, err = await self.manage(
            "backend-add", "sim.ganeti.local", "--url", SIM_URL, "--user", "synnefo",
            "--password-file", self.passwordFile("wrong"),
        )  # fmt: skip
        self.assertEqual(code, 1)
        self.assertIn("cannot reach the RAPI of sim.ganeti.local", err)
        code, _out, err = await self.manage(
            "backend-add", "other.example.org", "--url", SIM_URL, "--user", "synnefo",
            "--password-file", self.passwordFile(),
        )  # fmt: skip
        self.assertEqual(code, 1)
        self.assertIn("serves cluster sim.ganeti.local, not other.example.org", err)
        self.assertEqual(await BackendRepository(self.database).list(), [])

    async def test_addBadInput(self) -> None:
        """
        A malformed URL, a missing password file, a non-PEM pin or a pin
        with plain HTTP are one-line errors with exit status 2, and so are
        both --ca-file and --no-verify.
        """
        notPEM = Path(self.mktemp())
        notPEM.write_text("hello\n")
        cases = [
            ("backend-add", "c1", "--url", "ftp://x/", "--no-check"),
            ("backend-add", "c1", "--password-file", "/nonexistent/pw", "--no-check"),
            ("backend-add", "c1", "--ca-file", str(notPEM), "--no-check"),
            ("backend-add", "c1", "--url", "http://h:5080", "--ca-file", self.pemFile(), "--no-check"),
            ("backend-add", "c1", "--ca-file", self.pemFile(), "--no-verify"),
            ("backend-add", "c1", "--port", "70000", "--no-check"),
            ("backend-add", "--no-check"),
            ("backend-add", "c1", "--clustername", "c2", "--no-check"),
        ]
        for argv in cases:
            code, out, err = await self.manage(*argv)
            self.assertEqual((code, out), (2, ""), argv)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIn("error:", err)
        self.assertEqual(await BackendRepository(self.database).list(), [])

    def pemFile(self) -> str:
        path = Path(self.mktemp())
        path.write_bytes(_pem())
        return str(path)

    async def test_pinnedOrUnverified(self) -> None:
        """
        --ca-file stores the pinned PEM (TLS mode "pinned"); --no-verify
        disables the check; backend-modify can switch back to the system
        trust store. The registry's client is rebuilt for each change.
        """
        pem = self.pemFile()
        data = await self.manageJSON("backend-add", "c1.example.org", "--ca-file", pem, "--no-check")
        self.assertEqual((data["tls"], data["rapi_url"]), ("pinned", "https://c1.example.org:5080"))
        backend = await BackendRepository(self.database).get(data["id"])
        assert backend is not None
        self.assertEqual(backend.ca_pem.encode(), Path(pem).read_bytes())
        withKey = Path(self.mktemp())
        withKey.write_bytes(_keyAndPem())
        data = await self.manageJSON("backend-modify", "c1.example.org", "--ca-file", str(withKey))
        backend = await BackendRepository(self.database).get(data["id"])
        assert backend is not None
        self.assertNotIn("PRIVATE KEY", backend.ca_pem)
        self.assertTrue(backend.ca_pem.startswith("-----BEGIN CERTIFICATE-----"))
        self.assertTrue(backend.verify_tls)
        data = await self.manageJSON(
            "backend-add", "--clustername", "c2.example.org", "--port", "5081", "--no-verify", "--no-check"
        )
        self.assertEqual((data["tls"], data["rapi_url"]), ("none", "https://c2.example.org:5081"))
        data = await self.manageJSON("backend-modify", "c1.example.org", "--system-trust")
        self.assertEqual(data["tls"], "system")
        backend = await BackendRepository(self.database).get(data["id"])
        assert backend is not None
        self.assertEqual(backend.ca_pem, "")

    async def test_listAndModifyFlags(self) -> None:
        """
        backend-modify sets drained and offline (by id or name) and
        credentials; backend-list shows them in every format.
        """
        self.simulate()
        data = await self.addSim()
        await self.manageJSON("backend-modify", str(data["id"]), "--drained", "True")
        await self.manageJSON("backend-modify", "sim.ganeti.local", "--offline", "yes", "--username", "reader")
        rows = await self.manageJSON("backend-list")
        self.assertEqual(
            [(r["clustername"], r["drained"], r["offline"], r["username"]) for r in rows],
            [("sim.ganeti.local", True, True, "reader")],
        )
        backend = await BackendRepository(self.database).get(data["id"])
        assert backend is not None
        self.assertFalse(backend.usable)
        code, out, _err = await self.manage("--output-format", "csv", "backend-list")
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith("id,clustername,rapi_url,username,tls,"))
        code, out, _err = await self.manage("backend-list")
        self.assertIn("SIM.GANETI.LOCAL", out.upper())

    async def test_modifyCheckAndErrors(self) -> None:
        """
        backend-modify --check contacts the cluster with the new
        credentials and refuses to save ones it rejects; an unknown backend
        or nothing to change are errors.
        """
        self.simulate()
        data = await self.addSim()
        code, _out, err = await self.manage(
            "backend-modify", "sim.ganeti.local", "--password-file", self.passwordFile("bad"), "--check"
        )
        self.assertEqual(code, 1)
        self.assertIn("cannot reach", err)
        backend = await BackendRepository(self.database).get(data["id"])
        assert backend is not None
        self.assertEqual(backend.password, "synnefo-sim")
        code, _out, err = await self.manage("backend-modify", "nope", "--drained", "true")
        self.assertEqual(code, 1)
        self.assertIn("no backend 'nope'", err)
        code, _out, err = await self.manage("backend-modify", "sim.ganeti.local")
        self.assertEqual(code, 1)
        self.assertIn("nothing to change", err)
        code, _out, err = await self.manage("backend-modify", "sim.ganeti.local", "--drained", "maybe")
        self.assertEqual(code, 2)

    async def test_removeRefusesWhileServersUseIt(self) -> None:
        """
        backend-remove refuses while a (live or deleted) server references
        the backend, and removes one no server uses.
        """
        data = await self.manageJSON("backend-add", "c1.example.org", "--no-check")
        flavors = FlavorRepository(self.database)
        volumeType = await flavors.addVolumeType("drbd", "drbd")
        flavor = await flavors.create(1, 512, 10, volumeType.id)
        image = await ImageRepository(self.database).register("img", "system", "file:///img")
        user, _token = await UserRepository(self.database).create("u@example.org", "U")
        server = await ServerRepository(self.database).create(
            "vm", user.uuid, flavor.id, image.id, backendId=data["id"]
        )
        code, _out, err = await self.manage("backend-remove", "c1.example.org")
        self.assertEqual(code, 1)
        self.assertIn(f"still hosts 1 server(s): {server.id}", err)
        await ServerRepository(self.database).update(server.id, deleted=True)
        code, _out, err = await self.manage("backend-remove", str(data["id"]))
        self.assertEqual(code, 1)
        self.assertIn("deleted server", err)
        other = await self.manageJSON("backend-add", "c2.example.org", "--no-check")
        code, _out, err = await self.manage("backend-remove", "c2.example.org")
        self.assertEqual(code, 0, err)
        self.assertIsNone(await BackendRepository(self.database).get(other["id"]))

    async def test_updateStatus(self) -> None:
        """
        backend-update-status stores the cluster's node resources; an
        unreachable backend is reported and the exit status is 1.
        """
        sim = self.simulate()
        data = await self.addSim()

        sim.cluster.memoryMiB = 4096
        rows = await self.manageJSON("backend-update-status")
        self.assertEqual([(r["clustername"], r["mtotal"], r["mfree"]) for r in rows],
                         [("sim.ganeti.local", 4096, 4096)])  # fmt: skip
        await self.manageJSON("backend-modify", "sim.ganeti.local", "--password-file", self.passwordFile("bad"))
        code, out, err = await self.manage("--output-format", "json", "backend-update-status", str(data["id"]))
        self.assertEqual(code, 1)
        self.assertIn("cannot read the nodes of sim.ganeti.local", err)
        self.assertEqual(out.strip(), "[]")

    def test_nodeResources(self) -> None:
        """
        Only online, undrained, VM-capable nodes count; missing values are zero.
        """
        from synnefo_twisted.manage.backends import nodeResources

        nodes = [
            {"mfree": 100, "mtotal": 200, "dfree": 10, "dtotal": 20, "pinst_cnt": 1, "ctotal": 4},
            {"mfree": 50, "mtotal": 100, "offline": True, "ctotal": 8},
            {"mfree": 50, "mtotal": 100, "drained": True},
            {"mfree": 50, "vm_capable": False},
            {"mfree": 7, "mtotal": None, "ctotal": 2},
        ]
        self.assertEqual(
            nodeResources(nodes),
            {"mfree": 107, "mtotal": 200, "dfree": 10, "dtotal": 20, "pinst_cnt": 1, "ctotal": 6},
        )
