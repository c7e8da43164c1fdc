"""
Tests for L{synnefo_twisted.logic.servers}: create-request validation,
status tables, action checks, quota provisions and the CreateInstance call.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.db.models import Backend, Flavor, Image, Server, VolumeType
from synnefo_twisted.logic import servers as logic
from synnefo_twisted.logic.servers import (
    BadRequest,
    BuildInProgress,
    Forbidden,
    ItemNotFound,
    NotImplementedFault,
    OverLimit,
    ServerFault,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def makeServer(**fields: Any) -> Server:
    values: dict[str, Any] = {
        "id": 42,
        "name": "vm",
        "userid": "u-1",
        "project": "p-1",
        "shared_to_project": False,
        "backend_id": 1,
        "flavor_id": 1,
        "image_id": "img",
        "operstate": "STARTED",
        "action": None,
        "backendjobid": None,
        "backendopcode": None,
        "backendjobstatus": None,
        "backendlogmsg": None,
        "backendtime": None,
        "task": None,
        "task_job_id": None,
        "buildpercentage": 0,
        "suspended": False,
        "deleted": False,
        "rescue": False,
        "rescue_image": None,
        "serial_id": None,
        "key_names": (),
        "config_url": None,
        "created": NOW,
        "updated": NOW,
    }
    values.update(fields)
    return Server(**values)


def makeFlavor(**fields: Any) -> Flavor:
    values: dict[str, Any] = {
        "id": 1,
        "name": "C2R2048D20drbd",
        "cpu": 2,
        "ram": 2048,
        "disk": 20,
        "volume_type_id": 1,
        "allow_create": True,
        "public": True,
        "deleted": False,
        "created": NOW,
        "updated": NOW,
    }
    values.update(fields)
    return Flavor(**values)


def makeBackend(**fields: Any) -> Backend:
    values: dict[str, Any] = {
        "id": 1,
        "clustername": "c1",
        "rapi_url": "https://c1:5080",
        "username": "u",
        "password": "p",
        "verify_tls": True,
        "hypervisor": "kvm",
        "disk_templates": ("drbd", "plain"),
        "public": True,
        "drained": False,
        "offline": False,
        "simulated": False,
        "mfree": 8192,
        "mtotal": 16384,
        "dfree": 500 * 1024,
        "dtotal": 1000 * 1024,
        "pinst_cnt": 4,
        "ctotal": 8,
        "resources_updated": None,
        "created": NOW,
        "updated": NOW,
    }
    values.update(fields)
    return Backend(**values)


def makeImage(**fields: Any) -> Image:
    values: dict[str, Any] = {
        "id": "img-1",
        "name": "debian",
        "owner": "u-1",
        "location": "file:///images/debian.diskdump",
        "checksum": "",
        "size": 1,
        "disk_format": "diskdump",
        "container_format": "bare",
        "status": "AVAILABLE",
        "is_public": True,
        "is_snapshot": False,
        "deleted": False,
        "created": NOW,
        "updated": NOW,
        "properties": {"OS": "debian"},
    }
    values.update(fields)
    return Image(**values)


def body(**server: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "vm", "imageRef": "img-1", "flavorRef": 1}
    base.update(server)
    return {"server": base}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class FaultTests(SynchronousTestCase):
    def test_codes(self) -> None:
        """
        Each fault class carries the HTTP code and fault name of spec §1.2.
        """
        table = {
            BadRequest: (400, "badRequest"),
            Forbidden: (403, "forbidden"),
            ItemNotFound: (404, "itemNotFound"),
            logic.Conflict: (409, "conflict"),
            BuildInProgress: (409, "buildInProgress"),
            OverLimit: (413, "overLimit"),
            NotImplementedFault: (501, "notImplemented"),
            logic.ServiceUnavailable: (503, "serviceUnavailable"),
        }
        for cls, (code, name) in table.items():
            fault = cls("m", "f")
            self.assertIsInstance(fault, ServerFault)
            self.assertEqual((fault.code, fault.faultName, fault.message, fault.field), (code, name, "m", "f"))


class ParseCreateRequestTests(SynchronousTestCase):
    def assertFault(self, cls: type[ServerFault], field: str, data: object) -> ServerFault:
        fault = self.assertRaises(cls, logic.parseCreateRequest, data)
        self.assertEqual(fault.field, field)
        return fault

    def test_minimal(self) -> None:
        """
        Name, imageRef and flavorRef alone make a request with no networks given.
        """
        request = logic.parseCreateRequest(body())
        self.assertEqual((request.name, request.imageRef, request.flavorRef), ("vm", "img-1", 1))
        self.assertIsNone(request.networks)
        self.assertEqual((request.keyNames, request.metadata, request.tags), ((), {}, ()))

    def test_flavorRefString(self) -> None:
        """
        A flavorRef given as a string of digits (as novaclient sends it) is accepted.
        """
        self.assertEqual(logic.parseCreateRequest(body(flavorRef="7")).flavorRef, 7)

    def test_required(self) -> None:
        """
        A missing name, imageRef or flavorRef is a 400 naming that field.
        """
        for field in ("name", "imageRef", "flavorRef"):
            data = body()
            del data["server"][field]
            fault = self.assertFault(BadRequest, field, data)
            self.assertIn(field, fault.message)
        self.assertFault(BadRequest, "server", {"nope": {}})
        self.assertFault(BadRequest, "server", [])
        self.assertFault(BadRequest, "server", {"server": "x"})

    def test_wrongTypes(self) -> None:
        """
        Fields of the wrong type are 400s naming the field.
        """
        self.assertFault(BadRequest, "name", body(name=3))
        self.assertFault(BadRequest, "imageRef", body(imageRef=3))
        self.assertFault(BadRequest, "flavorRef", body(flavorRef="x1"))
        self.assertFault(BadRequest, "flavorRef", body(flavorRef=True))
        self.assertFault(BadRequest, "metadata", body(metadata=["a"]))
        self.assertFault(BadRequest, "metadata", body(metadata={"a": 1}))
        self.assertFault(BadRequest, "tags", body(tags="a"))
        self.assertFault(BadRequest, "shared_to_project", body(shared_to_project="yes"))
        self.assertFault(BadRequest, "project", body(project=5))

    def test_metadataLimits(self) -> None:
        """
        Metadata keys over 50, values over 500 characters and more than 10 items are refused.
        """
        self.assertFault(BadRequest, "metadata", body(metadata={"k" * 51: "v"}))
        self.assertFault(BadRequest, "metadata", body(metadata={"k": "v" * 501}))
        fault = self.assertFault(BadRequest, "metadata", body(metadata={str(i): "v" for i in range(11)}))
        self.assertEqual(fault.message, "Virtual Machines cannot have more than 10 metadata items")
        ok = {"k" * 50: "v" * 500, **{str(i): "v" for i in range(9)}}
        self.assertEqual(logic.parseCreateRequest(body(metadata=ok)).metadata, ok)

    def test_tagLimits(self) -> None:
        """
        More than 50 tags or a tag over 60 characters is refused; duplicates collapse.
        """
        self.assertFault(BadRequest, "tags", body(tags=[str(i) for i in range(51)]))
        self.assertFault(BadRequest, "tags", body(tags=["t" * 61]))
        self.assertEqual(logic.parseCreateRequest(body(tags=["a", "b", "a"])).tags, ("a", "b"))

    def test_personality(self) -> None:
        """
        Up to five well-formed files of at most 10240 decoded bytes are kept with their attributes.
        """
        files = [{"path": "/root/f", "contents": b64(b"x" * 10240), "owner": "root", "group": "root", "mode": 384}]
        request = logic.parseCreateRequest(body(personality=files))
        self.assertEqual(request.personality[0].toJSON(), files[0])

    def test_personalityOverLimit(self) -> None:
        """
        Six files, or one over 10240 decoded bytes, is a 413 overLimit.
        """
        one = {"path": "/f", "contents": b64(b"x")}
        self.assertFault(OverLimit, "personality", body(personality=[one] * 6))
        self.assertFault(OverLimit, "personality", body(personality=[{"path": "/f", "contents": b64(b"x" * 10241)}]))

    def test_personalityMalformed(self) -> None:
        """
        Unknown keys, a missing path, non-base64 contents or a bad mode are 400s.
        """
        for entry in (
            {"path": "/f", "contents": b64(b"x"), "extra": 1},
            {"contents": b64(b"x")},
            {"path": "/f", "contents": "!!!"},
            {"path": "/f", "contents": b64(b"x"), "mode": "rw"},
            "file",
        ):
            self.assertFault(BadRequest, "personality", body(personality=[entry]))

    def test_userData(self) -> None:
        """
        user_data must be base64.
        """
        self.assertEqual(logic.parseCreateRequest(body(user_data=b64(b"#!/bin/sh"))).userData, b64(b"#!/bin/sh"))
        self.assertFault(BadRequest, "user_data", body(user_data="not base64!"))

    def test_adminPass(self) -> None:
        """
        A given adminPass needs upper and lower case, a digit and ten characters.
        """
        self.assertEqual(logic.parseCreateRequest(body(adminPass="Strong1Passw")).adminPass, "Strong1Passw")
        for weak in ("Short1A", "alllowercase1", "ALLUPPERCASE1", "NoDigitsHereAtAll"):
            fault = self.assertFault(BadRequest, "adminPass", body(adminPass=weak))
            self.assertEqual(fault.message, logic.WEAK_PASSWORD)

    def test_randomPassword(self) -> None:
        """
        Generated passwords are strong and differ.
        """
        passwords = {logic.randomPassword() for _ in range(20)}
        self.assertEqual(len(passwords), 20)
        self.assertTrue(all(logic.passwordIsStrong(p) and len(p) == 10 for p in passwords))

    def test_keyNames(self) -> None:
        """
        key_name or SNF:key_names give the key names; both at once is a 400.
        """
        self.assertEqual(logic.parseCreateRequest(body(key_name="k1")).keyNames, ("k1",))
        self.assertEqual(logic.parseCreateRequest(body(**{"SNF:key_names": ["a", "b"]})).keyNames, ("a", "b"))
        self.assertFault(BadRequest, "key_name", body(key_name="k1", **{"SNF:key_names": ["k2"]}))
        self.assertFault(BadRequest, "SNF:key_names", body(**{"SNF:key_names": "k2"}))

    def test_networks(self) -> None:
        """
        Network entries name a network (with an optional fixed IP) or a port; [] means none.
        """
        request = logic.parseCreateRequest(
            body(networks=[{"uuid": "3"}, {"uuid": 4, "fixed_ip": "10.0.0.5"}, {"port": "9"}])
        )
        self.assertEqual(
            request.networks,
            (
                logic.NetworkRequest(network="3"),
                logic.NetworkRequest(network="4", fixedIp="10.0.0.5"),
                logic.NetworkRequest(port="9"),
            ),
        )
        self.assertEqual(logic.parseCreateRequest(body(networks=[])).networks, ())

    def test_networksMalformed(self) -> None:
        """
        Entries without uuid or port, bad fixed IPs and more than eight NICs are 400s.
        """
        self.assertFault(BadRequest, "networks", body(networks=[{"fixed_ip": "10.0.0.1"}]))
        self.assertFault(BadRequest, "networks", body(networks=[{"uuid": "1", "fixed_ip": "10.0.0"}]))
        self.assertFault(BadRequest, "networks", body(networks="1"))
        self.assertFault(BadRequest, "networks", body(networks=[{"uuid": "1"}] * 9))


def _status(**fields: Any) -> str:
    return logic.serverStatus(makeServer(**fields))


class StatusTests(SynchronousTestCase):
    def test_operstates(self) -> None:
        """
        Each operstate maps to its OpenStack status; an unknown one is UNKNOWN.
        """
        table = {
            "BUILD": "BUILD",
            "ERROR": "ERROR",
            "STOPPED": "STOPPED",
            "STARTED": "ACTIVE",
            "RESIZE": "RESIZE",
            "DESTROYED": "DELETED",
            "WEIRD": "UNKNOWN",
        }
        for operstate, status in table.items():
            self.assertEqual(_status(operstate=operstate), status, operstate)

    def test_deleted(self) -> None:
        """
        A deleted server is DELETED whatever its operstate.
        """
        self.assertEqual(_status(operstate="STARTED", deleted=True), "DELETED")

    def test_reboot(self) -> None:
        """
        An ACTIVE server with a reboot job in progress is REBOOT, not once the job is final.
        """
        for jobStatus in ("queued", "waiting", "running"):
            self.assertEqual(_status(backendopcode="OP_INSTANCE_REBOOT", backendjobstatus=jobStatus), "REBOOT")
        self.assertEqual(_status(backendopcode="OP_INSTANCE_REBOOT", backendjobstatus="success"), "ACTIVE")
        self.assertEqual(
            _status(operstate="STOPPED", backendopcode="OP_INSTANCE_REBOOT", backendjobstatus="running"), "STOPPED"
        )

    def test_resizeQuirk(self) -> None:
        """
        A resize recorded as OP_INSTANCE_SET_PARAMS leaves the server STOPPED (the original's dead branch).
        """
        fields = {"operstate": "STOPPED", "task": "RESIZE", "backendjobstatus": "running"}
        self.assertEqual(_status(backendopcode="OP_INSTANCE_SET_PARAMS", **fields), "STOPPED")
        self.assertEqual(_status(backendopcode="OP_INSTANCE_MODIFY", **fields), "RESIZE")

    def test_taskState(self) -> None:
        """
        Tasks map to SNF:task_state; none is empty and unknown ones are UNKNOWN.
        """
        self.assertEqual(logic.taskState(None), "")
        self.assertEqual(logic.taskState("BUILD"), "BUILDING")
        self.assertEqual(logic.taskState("DETACH_VOLUME"), "DETACHING_VOLUME")
        self.assertEqual(logic.taskState("DANCE"), "UNKNOWN")

    def test_progress(self) -> None:
        """
        Progress is 100 when ACTIVE, else the build percentage.
        """
        self.assertEqual(logic.progress(makeServer(buildpercentage=30)), 100)
        self.assertEqual(logic.progress(makeServer(operstate="BUILD", buildpercentage=30)), 30)


class ActionCodeTests(SynchronousTestCase):
    def test_mapping(self) -> None:
        """
        Action keys map to action codes; arbitrary actions keep their key.
        """
        table = {
            "start": "START",
            "os-start": "START",
            "shutdown": "STOP",
            "os-stop": "STOP",
            "reboot": "REBOOT",
            "resize": "RESIZE",
            "delete": "DESTROY",
            "rescue": "RESCUE",
            "addFloatingIp": "ADDFLOATINGIP",
            "console": "console",
            "os-getVNCConsole": "os-getVNCConsole",
            "reassign": "reassign",
            "firewallProfile": "firewallProfile",
        }
        for key, code in table.items():
            self.assertEqual(logic.actionCode(key), code, key)

    def test_notImplemented(self) -> None:
        """
        changePassword, rebuild, confirmResize, revertResize and RDP/SPICE consoles are 501s.
        """
        for key in ("changePassword", "rebuild", "confirmResize", "revertResize", "os-getRDPConsole"):
            self.assertRaises(NotImplementedFault, logic.actionCode, key)

    def test_unknown(self) -> None:
        """
        Unknown keys, and create, are 400 "Action <key> not supported".
        """
        for key in ("dance", "create", ""):
            fault = self.assertRaises(BadRequest, logic.actionCode, key)
            self.assertEqual(fault.message, f"Action {key} not supported")


class ValidateActionTests(SynchronousTestCase):
    def test_allowed(self) -> None:
        """
        START needs STOPPED, STOP and REBOOT need STARTED-or-not-ERROR, RESIZE needs STOPPED.
        """
        logic.validateServerAction(makeServer(operstate="STOPPED"), "START")
        logic.validateServerAction(makeServer(operstate="STARTED"), "STOP")
        logic.validateServerAction(makeServer(operstate="STARTED"), "REBOOT")
        logic.validateServerAction(makeServer(operstate="STOPPED"), "RESIZE")

    def test_wrongState(self) -> None:
        """
        An action in the wrong state is a 400 naming the action and the state.
        """
        fault = self.assertRaises(BadRequest, logic.validateServerAction, makeServer(operstate="STARTED"), "START")
        self.assertEqual(fault.message, "Cannot perform 'START' action while server is in 'STARTED' state.")
        self.assertRaises(BadRequest, logic.validateServerAction, makeServer(operstate="STOPPED"), "STOP")
        self.assertRaises(BadRequest, logic.validateServerAction, makeServer(operstate="STARTED"), "RESIZE")

    def test_error(self) -> None:
        """
        A server in ERROR refuses everything but DESTROY.
        """
        server = makeServer(operstate="ERROR")
        fault = self.assertRaises(BadRequest, logic.validateServerAction, server, "REBOOT")
        self.assertEqual(fault.message, "Cannot perform 'REBOOT' action while server is in 'ERROR' state.")
        logic.validateServerAction(server, "DESTROY")

    def test_build(self) -> None:
        """
        A server being built is a 409 buildInProgress, by operstate or by task.
        """
        self.assertRaises(BuildInProgress, logic.validateServerAction, makeServer(operstate="BUILD"), "STOP")
        self.assertRaises(BuildInProgress, logic.validateServerAction, makeServer(task="BUILD"), "STOP")
        logic.validateServerAction(makeServer(operstate="BUILD", task="BUILD"), "DESTROY")

    def test_pendingTask(self) -> None:
        """
        Another pending task is a 400 naming both.
        """
        fault = self.assertRaises(BadRequest, logic.validateServerAction, makeServer(task="REBOOT"), "STOP")
        self.assertEqual(fault.message, "Cannot perform 'STOP' action while there is a pending 'REBOOT'.")

    def test_deleted(self) -> None:
        """
        A deleted server refuses every action, DESTROY included.
        """
        server = makeServer(deleted=True)
        for action in ("DESTROY", "START", "REBOOT"):
            self.assertRaises(BadRequest, logic.validateServerAction, server, action)

    def test_suspended(self) -> None:
        """
        A suspended server refuses actions to its owner but not to an admin.
        """
        server = makeServer(suspended=True)
        self.assertRaises(Forbidden, logic.validateServerAction, server, "STOP")
        logic.validateServerAction(server, "STOP", isAdmin=True)
        self.assertRaises(Forbidden, logic.validateServerAction, makeServer(), "SUSPEND")

    def test_reassignAnyState(self) -> None:
        """
        reassign is allowed in any state without a pending task.
        """
        logic.validateServerAction(makeServer(operstate="ERROR"), "reassign")

    def test_hotplug(self) -> None:
        """
        CONNECT needs a stopped server only without hotplug.
        """
        logic.validateServerAction(makeServer(), "CONNECT")
        self.assertRaises(BadRequest, logic.validateServerAction, makeServer(), "CONNECT", hotplug=False)

    def test_rescue(self) -> None:
        """
        RESCUE needs a stopped server not in rescue; UNRESCUE one in rescue.
        """
        logic.validateServerAction(makeServer(operstate="STOPPED"), "RESCUE")
        self.assertRaises(
            BadRequest, logic.validateServerAction, makeServer(operstate="STOPPED", rescue=True), "RESCUE"
        )
        self.assertRaises(BadRequest, logic.validateServerAction, makeServer(operstate="STOPPED"), "UNRESCUE")

    def test_resizeFlavor(self) -> None:
        """
        A resize needs an existing, different flavor with the same disk and volume type.
        """
        server = makeServer(operstate="STOPPED")
        current = makeFlavor()
        logic.validateResize(server, current, makeFlavor(id=2, cpu=4), 2)
        self.assertRaises(ItemNotFound, logic.validateResize, server, current, None, 2)
        self.assertRaises(ItemNotFound, logic.validateResize, server, current, makeFlavor(id=2, deleted=True), 2)
        fault = self.assertRaises(BadRequest, logic.validateResize, server, current, current, 1)
        self.assertEqual(fault.message, "Server '42' flavor is already 'C2R2048D20drbd'.")
        self.assertRaises(BadRequest, logic.validateResize, server, current, makeFlavor(id=2, disk=40), 2)
        self.assertRaises(BadRequest, logic.validateResize, server, current, makeFlavor(id=2, volume_type_id=2), 2)

    def test_reboot(self) -> None:
        """
        HARD reboots have shutdown timeout 0, SOFT (the default) Ganeti's default; others are 400.
        """
        self.assertEqual(logic.rebootShutdownTimeout("HARD"), 0)
        self.assertIsNone(logic.rebootShutdownTimeout("SOFT"))
        self.assertIsNone(logic.rebootShutdownTimeout(None))
        fault = self.assertRaises(BadRequest, logic.rebootShutdownTimeout, "WARM")
        self.assertEqual((fault.message, fault.field), ("Invalid 'type' attribute.", "type"))


class ProvisionTests(SynchronousTestCase):
    flavor = makeFlavor(cpu=2, ram=1024, disk=10)

    def test_create(self) -> None:
        """
        A new server takes one VM, its CPUs and RAM (total and running) and its disk, in bytes.
        """
        self.assertEqual(
            logic.createProvisions(self.flavor),
            {
                "cyclades.vm": 1,
                "cyclades.total_cpu": 2,
                "cyclades.cpu": 2,
                "cyclades.total_ram": 1024 << 20,
                "cyclades.ram": 1024 << 20,
                "cyclades.disk": 10 << 30,
            },
        )

    def test_startStop(self) -> None:
        """
        START takes the running CPU and RAM, STOP gives them back, REBOOT changes nothing.
        """
        started = logic.actionProvisions(makeServer(operstate="STOPPED"), "START", self.flavor)
        self.assertEqual(started, {"cyclades.cpu": 2, "cyclades.ram": 1024 << 20})
        stopped = logic.actionProvisions(makeServer(), "STOP", self.flavor)
        self.assertEqual(stopped, {"cyclades.cpu": -2, "cyclades.ram": -(1024 << 20)})
        self.assertEqual(logic.actionProvisions(makeServer(), "REBOOT", self.flavor), {})

    def test_destroy(self) -> None:
        """
        DESTROY releases everything; the running CPU and RAM only when the server was running.
        """
        running = logic.actionProvisions(makeServer(), "DESTROY", self.flavor)
        self.assertEqual(running, {k: -v for k, v in logic.createProvisions(self.flavor).items()})
        stopped = logic.actionProvisions(makeServer(operstate="STOPPED"), "DESTROY", self.flavor)
        self.assertNotIn("cyclades.cpu", stopped)
        self.assertEqual(stopped["cyclades.vm"], -1)

    def test_resize(self) -> None:
        """
        RESIZE changes the total CPU and RAM by the difference.
        """
        bigger = makeFlavor(id=2, cpu=4, ram=1024, disk=10)
        self.assertEqual(
            logic.actionProvisions(makeServer(operstate="STOPPED"), "RESIZE", self.flavor, bigger),
            {"cyclades.total_cpu": 2},
        )


class CreateInstanceCallTests(SynchronousTestCase):
    def test_parameters(self) -> None:
        """
        The CreateInstance call carries spec §2.2's names, template, disks, NICs, beparams, osparams and tags.
        """
        call = logic.createInstanceCall(
            server=makeServer(id=42),
            flavor=makeFlavor(cpu=2, ram=2048, disk=20),
            volumeType=VolumeType(1, "drbd", "drbd", False),
            image=makeImage(),
            backend=makeBackend(hypervisor="kvm"),
            rootVolumeId=17,
            nics=[logic.NicSpec(5, 3, "10.0.0.2"), logic.NicSpec(6, 4, None)],
            configUrl="http://api/vmapi/v1.0/server-params/abc",
            tags=["my_tag 1"],
            depends=[11, 12],
        )
        self.assertEqual((call.name, call.diskTemplate), ("snf-42", "drbd"))
        self.assertEqual(call.disks, [{"name": "snf-vol-17", "size": 20 * 1024}])
        self.assertEqual(
            call.nics,
            [
                {"name": "snf-nic-5", "network": "snf-net-3", "ip": "10.0.0.2"},
                {"name": "snf-nic-6", "network": "snf-net-4", "ip": None},
            ],
        )
        self.assertEqual(
            call.kwargs,
            {
                "mode": "create",
                "os": "snf-image+default",
                "hvparams": {"serial_console": False},
                "wait_for_sync": False,
                "ip_check": False,
                "name_check": False,
                "dry_run": False,
                "beparams": {"auto_balance": True, "vcpus": 2, "memory": 2048},
                "osparams": {
                    "config_url": "http://api/vmapi/v1.0/server-params/abc",
                    "img_id": "file:///images/debian.diskdump",
                    "img_format": "diskdump",
                },
                "opportunistic_locking": True,
                "tags": ["my*tag/201"],
                "depends": [[11, ["canceled", "success", "error"]], [12, ["canceled", "success", "error"]]],
            },
        )
        self.assertNotIn("pnode", call.kwargs)

    def test_settings(self) -> None:
        """
        Settings give the prefix, OS, hypervisor params (narrowed to the backend's) and dry run; no depends when none.
        """
        settings = logic.CreateSettings(os="snf-image+test", dryRun=True, prefix="tst-")
        call = logic.createInstanceCall(
            server=makeServer(id=7),
            flavor=makeFlavor(),
            volumeType=VolumeType(1, "plain", "plain", False),
            image=makeImage(),
            backend=makeBackend(hypervisor="xen-pvm"),
            rootVolumeId=1,
            nics=[],
            configUrl="u",
            settings=settings,
        )
        self.assertEqual((call.name, call.disks[0]["name"]), ("tst-7", "tst-vol-1"))
        self.assertEqual(
            (call.kwargs["os"], call.kwargs["dry_run"], call.kwargs["hvparams"]), ("snf-image+test", True, {})
        )
        self.assertNotIn("depends", call.kwargs)

    def test_serverParams(self) -> None:
        """
        The snf-image parameters carry the password, personality, properties, keys and user data.
        """
        files = (logic.PersonalityFile("/f", b64(b"x"), mode=384),)
        params = logic.serverParams(makeImage(), "Secret1Pass", files, ["ssh-ed25519 AAA"], b64(b"#!"))
        self.assertEqual(params["img_passwd"], "Secret1Pass")
        self.assertEqual(json.loads(params["img_personality"]), [{"path": "/f", "contents": b64(b"x"), "mode": 384}])
        self.assertEqual(json.loads(params["img_properties"]), {"OS": "debian"})
        self.assertEqual((params["auth_keys"], params["cloud_userdata"]), ("ssh-ed25519 AAA", b64(b"#!")))
        self.assertNotIn("auth_keys", logic.serverParams(makeImage(), "p", ()))

    def test_encodeTag(self) -> None:
        """
        Tags are URL-quoted with % as / and _ as *.
        """
        self.assertEqual(logic.encodeTag("a b_c/d"), "a/20b*c/2Fd")
        self.assertEqual(attrs.asdict(logic.NicSpec(1, 2)), {"portId": 1, "networkId": 2, "ipv4": None})


class SmallValidatorTests(SynchronousTestCase):
    def test_serverName(self) -> None:
        """
        Names are strings of at most 255 characters.
        """
        self.assertEqual(logic.validateServerName("x"), "x")
        self.assertRaises(BadRequest, logic.validateServerName, None)
        self.assertRaises(BadRequest, logic.validateServerName, "x" * 256)

    def test_metadataWrite(self) -> None:
        """
        Deleted servers refuse metadata writes with 400, suspended ones with 403 except for admins.
        """
        logic.validateMetadataWrite(makeServer())
        self.assertRaises(BadRequest, logic.validateMetadataWrite, makeServer(deleted=True))
        self.assertRaises(Forbidden, logic.validateMetadataWrite, makeServer(suspended=True))
        logic.validateMetadataWrite(makeServer(suspended=True), isAdmin=True)

    def test_firewall(self) -> None:
        """
        Profiles map to spec §2.1's tags; the arguments need a known profile and a NIC id.
        """
        self.assertEqual(logic.firewallTag("ENABLED", "snf-nic-3"), "synnefo:network:snf-nic-3:protected")
        self.assertEqual(logic.firewallTag("DISABLED", "snf-nic-3"), "synnefo:network:snf-nic-3:unprotected")
        self.assertEqual(logic.firewallTag("PROTECTED", "snf-nic-3"), "synnefo:network:snf-nic-3:limited")
        self.assertEqual(logic.parseFirewallProfile({"profile": "enabled", "nic": "3"}), ("ENABLED", 3))
        for bad, field in (
            ({"nic": 3}, "profile"),
            ({"profile": "ENABLED"}, "nic"),
            ({"profile": "X", "nic": 3}, "profile"),
        ):
            fault = self.assertRaises(BadRequest, logic.parseFirewallProfile, bad)
            self.assertEqual(fault.field, field)

    def test_vncConsole(self) -> None:
        """
        novnc is a vnc-wss console behind the console page URL; xvpvnc a plain vnc host:port.
        """
        self.assertEqual(logic.vncConsoleType({"type": "novnc"}), "vnc-wss")
        self.assertEqual(logic.vncConsoleType({"type": "xvpvnc"}), "vnc")
        self.assertRaises(BadRequest, logic.vncConsoleType, {"type": "spice"})
        self.assertRaises(BadRequest, logic.vncConsoleType, {})
        console = {"host": "proxy", "port": 25000, "password": "p w"}
        self.assertEqual(
            logic.vncConsoleURL("novnc", console, "https://ui/machines/console"),
            {"type": "novnc", "url": "https://ui/machines/console?host=proxy&port=25000&password=p+w"},
        )
        self.assertEqual(
            logic.vncConsoleURL("xvpvnc", console, "unused"), {"type": "xvpvnc", "url": "proxy:25000?password=p+w"}
        )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
_FIELDS = st.dictionaries(
    st.sampled_from(
        ["name", "imageRef", "flavorRef", "metadata", "tags", "personality", "networks", "key_name", "SNF:key_names"]
        + ["adminPass", "user_data", "project", "shared_to_project"]
    ),
    _JSON,
    max_size=8,
)


class ParseCreateRequestPropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(fields=_FIELDS, valid=st.booleans())
    def test_anyBody(self, fields: dict[str, Any], valid: bool) -> None:
        """
        Any JSON body either parses or raises a ServerFault (400/413) naming a field; nothing else escapes.
        """
        base: dict[str, Any] = {"name": "n", "imageRef": "i", "flavorRef": 1} if valid else {}
        try:
            request = logic.parseCreateRequest({"server": {**base, **fields}})
        except ServerFault as fault:
            self.assertIn(fault.code, (400, 413))
            self.assertIsNotNone(fault.field)
        else:
            self.assertIsInstance(request.name, str)
            self.assertIsInstance(request.flavorRef, int)
