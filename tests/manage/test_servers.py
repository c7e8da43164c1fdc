"""
Tests for the server commands of snf-manage (L{synnefo_twisted.manage.servers}),
with servers created by the server logic on the simulated cluster.
"""

from __future__ import annotations

from synnefo_twisted.db.repositories import ProjectRepository, ServerRepository
from tests.manage.support import WorldTestCase


class ServerListShowTests(WorldTestCase):
    async def test_listFilters(self) -> None:
        """
        server-list shows every user's servers and filters by user, backend,
        status, suspension; deleted ones only with --deleted.
        """
        one = await self.createServer("one")
        two = await self.createServer("two")
        await ServerRepository(self.database).update(two.id, operstate="STOPPED", suspended=True)
        rows = await self.manageJSON("server-list")
        self.assertEqual([(r["id"], r["status"]) for r in rows], [(one.id, "ACTIVE"), (two.id, "STOPPED")])
        self.assertEqual(rows[0]["backend"], "sim.ganeti.local")
        self.assertEqual(rows[0]["flavor"], self.flavor.name)
        rows = await self.manageJSON("server-list", "--status", "stopped")
        self.assertEqual([r["id"] for r in rows], [two.id])
        rows = await self.manageJSON("server-list", "--suspended", "false")
        self.assertEqual([r["id"] for r in rows], [one.id])
        rows = await self.manageJSON("server-list", "--user", "user@example.org", "--display-mails")
        self.assertEqual({r["user"] for r in rows}, {"user@example.org"})
        self.assertEqual(await self.manageJSON("server-list", "--user", "other@example.org"), [])
        rows = await self.manageJSON("server-list", "--backend", "sim.ganeti.local")
        self.assertEqual(len(rows), 2)
        await ServerRepository(self.database).update(one.id, deleted=True, operstate="DESTROYED")
        rows = await self.manageJSON("server-list")
        self.assertEqual([r["id"] for r in rows], [two.id])
        rows = await self.manageJSON("server-list", "--deleted")
        self.assertEqual([(r["id"], r["status"]) for r in rows], [(one.id, "DELETED"), (two.id, "STOPPED")])
        rows = await self.manageJSON("server-list", "--status", "DELETED")
        self.assertEqual([r["id"] for r in rows], [one.id])

    async def test_listFormatsAndErrors(self) -> None:
        """
        server-list prints CSV and a table; an unknown user or backend is an
        error, an unknown status a usage error.
        """
        server = await self.createServer()
        code, out, _err = await self.manage("--output-format", "csv", "server-list")
        self.assertEqual(code, 0)
        self.assertEqual(out.splitlines()[0], "id,name,user,project,flavor,image,backend,status,operstate,task,"
                         "suspended,deleted,created")  # fmt: skip
        self.assertTrue(out.splitlines()[1].startswith(f"{server.id},vm1,{self.user.uuid},"))
        code, out, _err = await self.manage("server-list")
        self.assertIn("ACTIVE", out)
        code, _out, err = await self.manage("server-list", "--user", "ghost@example.org")
        self.assertEqual(code, 1)
        self.assertIn("no user", err)
        code, _out, err = await self.manage("server-list", "--backend", "nowhere")
        self.assertEqual(code, 1)
        code, _out, err = await self.manage("server-list", "--status", "SLEEPING")
        self.assertEqual(code, 2)
        self.assertEqual(len(err.splitlines()), 1)

    async def test_show(self) -> None:
        """
        server-show prints the database view: owner, flavor, backend, job,
        Ganeti name and metadata.
        """
        server = await self.createServer()
        await ServerRepository(self.database).setMetadata(server.id, {"OS": "debian"})
        data = await self.manageJSON("server-show", str(server.id), "--display-mails")
        self.assertEqual(data["user"], "user@example.org")
        self.assertEqual(data["ganeti_name"], f"snf-{server.id}")
        self.assertEqual(data["backendjobid"], server.backendjobid)
        self.assertEqual(data["metadata"], {"OS": "debian"})
        code, _out, err = await self.manage("server-show", "999")
        self.assertEqual(code, 1)
        self.assertIn("no server 999", err)
        code, _out, _err = await self.manage("server-show", "abc")
        self.assertEqual(code, 2)


class ServerInspectTests(WorldTestCase):
    async def test_inspectShowsGanetiAndJobs(self) -> None:
        """
        server-inspect puts the database view next to the instance record
        from the cluster and, with --jobs, the instance's jobs.
        """
        server = await self.createServer()
        data = await self.manageJSON("server-inspect", str(server.id), "--jobs")
        self.assertEqual(data["db"]["id"], server.id)
        instance = data["ganeti"]["instance"]
        self.assertEqual(instance["name"], f"snf-{server.id}")
        self.assertEqual(instance["status"], "running")
        self.assertIsNone(data["ganeti"]["error"])
        jobs = data["ganeti"]["jobs"]
        self.assertEqual([(j["id"], j["status"]) for j in jobs], [(server.backendjobid, "success")])
        self.assertIn("INSTANCE_CREATE", jobs[0]["summary"])

    async def test_inspectFlatFormats(self) -> None:
        """
        In pretty and CSV output the views are flattened into prefixed keys.
        """
        server = await self.createServer()
        code, out, err = await self.manage("--output-format", "csv", "server-inspect", str(server.id), "--jobs")
        self.assertEqual(code, 0, err)
        keys = [line.split(",", 1)[0] for line in out.splitlines()[1:]]
        self.assertIn("db.status", keys)
        self.assertIn("ganeti.instance.status", keys)
        self.assertIn(f"job.{server.backendjobid}.status", keys)
        code, out, err = await self.manage("server-inspect", str(server.id))
        self.assertEqual(code, 0, err)
        self.assertIn("ganeti.instance.admin_state", out)

    async def test_inspectMissingInstance(self) -> None:
        """
        When Ganeti has no such instance the database view is still shown
        and the Ganeti view says why it is empty.
        """
        server = await self.createServer()
        del self.sim.cluster.instances[f"snf-{server.id}"]
        data = await self.manageJSON("server-inspect", str(server.id))
        self.assertIsNone(data["ganeti"]["instance"])
        self.assertIn("does not exist on sim.ganeti.local", data["ganeti"]["error"])


class ServerModifyRemoveTests(WorldTestCase):
    async def test_modifyFields(self) -> None:
        """
        server-modify renames, reassigns to another member of the server's
        project (by e-mail; a non-member is refused) and suspends a server.
        """
        server = await self.createServer()
        code, _out, err = await self.manage("server-modify", str(server.id), "--user", "other@example.org")
        self.assertEqual(code, 1)
        self.assertIn("is not a member of project", err)
        await ProjectRepository(self.database).addMember(self.project.id, self.other.id)
        data = await self.manageJSON(
            "server-modify", str(server.id), "--name", "renamed", "--user", "other@example.org", "--suspended", "True"
        )
        self.assertEqual((data["name"], data["user"], data["suspended"]), ("renamed", self.other.uuid, True))
        stored = await ServerRepository(self.database).get(server.id)
        assert stored is not None
        self.assertEqual((stored.name, stored.userid, stored.suspended), ("renamed", self.other.uuid, True))

    async def test_modifyActionWaits(self) -> None:
        """
        --action stop submits the shutdown job through the server logic;
        with --wait the command returns once Ganeti finished it.
        """
        server = await self.createServer()
        data = await self.manageJSON("server-modify", str(server.id), "--action", "stop", "--wait")
        self.assertEqual((data["task"], data["job_status"]), ("STOP", "success"))
        self.assertFalse(self.sim.cluster.instances[f"snf-{server.id}"].operUp)

    async def test_modifyFlavorNeedsStopped(self) -> None:
        """
        --flavor resizes through the logic, which refuses a running server
        (nothing changed, even the other options); a stopped one gets the
        modify job with the new flavor's CPUs and memory.
        """
        server = await self.createServer()
        code, _out, err = await self.manage(
            "server-modify", str(server.id), "--flavor", str(self.bigger.id), "--name", "x"
        )
        self.assertEqual(code, 1)
        self.assertIn("resize refused", err)
        stored = await ServerRepository(self.database).get(server.id)
        assert stored is not None
        self.assertEqual(stored.name, "vm1")
        await ServerRepository(self.database).update(server.id, operstate="STOPPED")
        data = await self.manageJSON("server-modify", str(server.id), "--flavor", str(self.bigger.id), "--wait")
        self.assertEqual(data["job_status"], "success")
        beparams = self.sim.cluster.instances[f"snf-{server.id}"].beparams
        self.assertEqual((beparams["vcpus"], beparams["maxmem"]), (4, 2048))

    async def test_modifyErrors(self) -> None:
        """
        Nothing to change, an unknown user or flavor, a bad boolean, or both
        --flavor and --action are errors and change nothing.
        """
        server = await self.createServer()
        for argv, code, message in [
            ((), 1, "nothing to change"),
            (("--user", "ghost@example.org"), 1, "no user"),
            (("--flavor", "999"), 1, "no flavor 999"),
            (("--suspended", "perhaps"), 2, "expected True or False"),
            (("--flavor", str(self.bigger.id), "--action", "stop"), 2, "either --flavor or --action"),
            (("--name", ""), 2, "--name"),
        ]:
            got, out, err = await self.manage("server-modify", str(server.id), *argv)
            self.assertEqual((got, out), (code, ""), argv)
            self.assertIn(message, err)
        stored = await ServerRepository(self.database).get(server.id)
        self.assertEqual(stored, server)

    async def test_removeWaits(self) -> None:
        """
        server-remove submits the delete job through the logic; with --wait
        it reports the job's outcome and the instance is gone from Ganeti.
        """
        server = await self.createServer()
        rows = await self.manageJSON("server-remove", str(server.id), "--wait")
        self.assertEqual(len(rows), 1)
        self.assertEqual((rows[0]["id"], rows[0]["status"]), (server.id, "success"))
        self.assertNotIn(f"snf-{server.id}", self.sim.cluster.instances)
        stored = await ServerRepository(self.database).get(server.id)
        assert stored is not None
        self.assertEqual((stored.action, stored.task_job_id), ("DESTROY", rows[0]["job"]))

    async def test_removeSeveralReportsFailures(self) -> None:
        """
        server-remove handles several ids: the good ones are submitted, the
        others reported on stderr, and the exit status is 1.
        """
        one = await self.createServer("one")
        two = await self.createServer("two")
        await ServerRepository(self.database).update(two.id, deleted=True, operstate="DESTROYED")
        code, out, err = await self.manage("--output-format", "json", "server-remove", str(one.id), str(two.id), "77")
        self.assertEqual(code, 1)
        self.assertIn(f"server {two.id}: delete refused", err)
        self.assertIn("no server 77", err)
        self.assertIn(f'"id": {one.id}', out)
        self.assertIn('"status": "submitted"', out)
