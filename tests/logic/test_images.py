"""
Tests for L{synnefo_twisted.logic.images}: the image registry's pure
decisions (parsing, locations, visibility, lists, views).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.db.models import Image, ImageMember
from synnefo_twisted.logic import images as logic
from synnefo_twisted.logic.images import Caller, FileFacts, ImageForbidden, InvalidImageRequest

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def makeImage(**fields: Any) -> Image:
    values: dict[str, Any] = {
        "id": "img-1",
        "name": "debian",
        "owner": "u-1",
        "location": "http://h/debian",
        "checksum": "",
        "size": 10,
        "disk_format": "diskdump",
        "container_format": "bare",
        "status": "AVAILABLE",
        "is_public": False,
        "is_snapshot": False,
        "deleted": False,
        "created": NOW,
        "updated": NOW,
    }
    values.update(fields)
    return Image(**values)


class LocationTests(SynchronousTestCase):
    def test_accepted(self) -> None:
        """
        http(s), pithos and file URLs are kept; an absolute path becomes a file URL with its path.
        """
        self.assertEqual(logic.parseLocation("https://h/x.img"), logic.Location("https://h/x.img", "https"))
        self.assertEqual(logic.parseLocation("pithos://acct/images/x").scheme, "pithos")
        self.assertEqual(
            logic.parseLocation("/srv/my image.img"),
            logic.Location("file:///srv/my%20image.img", "file", "/srv/my image.img"),
        )
        self.assertEqual(logic.parseLocation("file://localhost/srv/x").path, "/srv/x")

    def test_refused(self) -> None:
        """
        Other schemes, host-less URLs, relative or unnormalized paths and remote file URLs are refused, naming 'location'.
        """
        for raw in (
            "",
            "x.img",
            "ftp://h/x",
            "http://",
            "pithos://acct",
            "pithos://acct/container",
            "file://otherhost/x",
            "file:///srv/../etc/passwd",
            "/srv//x",
            "/srv/x/",
            "file:///srv/x?y",
            "http://h/a b",
            42,
        ):
            with self.assertRaises(InvalidImageRequest) as caught:
                logic.parseLocation(raw)
            self.assertEqual(caught.exception.field, "location", raw)

    def test_withinRoots(self) -> None:
        """
        A path is within a root when equal to it or below it (not a sibling with the same prefix).
        """
        self.assertTrue(logic.withinRoots("/srv/img/a", ["/srv/img"]))
        self.assertTrue(logic.withinRoots("/srv/img/a", ["/srv/img/"]))
        self.assertFalse(logic.withinRoots("/srv/images2/a", ["/srv/img", "/srv/images"]))
        self.assertFalse(logic.withinRoots("/srv/a", []))
        self.assertTrue(logic.withinRoots("/anything", ["/"]))


class RegistrationTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """
        Only name and location are needed; formats default to diskdump/bare, the image private.
        """
        request = logic.parseRegistration({"name": "n", "location": "http://h/x"}, {})
        self.assertEqual((request.diskFormat, request.containerFormat, request.isPublic), ("diskdump", "bare", False))
        self.assertEqual((request.size, request.checksum, request.owner, request.imageId), (None, None, None, None))

    def test_typedValues(self) -> None:
        """
        Header strings and JSON values both parse (booleans any case, integers as digits).
        """
        meta = {"name": "n", "location": "http://h/x", "is_public": "TRUE", "min_disk": "3", "size": 7}
        request = logic.parseRegistration(meta, {"k": 1})
        self.assertEqual((request.isPublic, request.minDisk, request.size), (True, 3, 7))
        self.assertEqual(request.properties, {"k": "1"})

    def test_badFields(self) -> None:
        """
        Each bad value is refused naming its field.
        """
        base = {"name": "n", "location": "http://h/x"}
        for change, field in (
            ({"min_ram": True}, "min_ram"),
            ({"size": "1e3"}, "size"),
            ({"name": "a\nb"}, "name"),
            ({"name": "x" * 256}, "name"),
            ({"owner": "no spaces"}, "owner"),
            ({"deleted": "false"}, "deleted"),
            ({"copy_from": "http://h"}, "copy_from"),
        ):
            with self.assertRaises(InvalidImageRequest) as caught:
                logic.parseRegistration({**base, **change}, {})
            self.assertEqual(caught.exception.field, field)
        with self.assertRaises(InvalidImageRequest) as caught:
            logic.parseRegistration(base, {"k": {"nested": 1}})
        self.assertEqual(caught.exception.field, "properties.k")

    def test_owner(self) -> None:
        """
        A user registers for themselves; naming another owner needs the admin role; the operator defaults to system.
        """
        request = logic.parseRegistration({"name": "n", "location": "http://h/x", "owner": "u-2"}, {})
        with self.assertRaises(ImageForbidden):
            logic.checkRegistration(request, Caller("u-1"))
        self.assertEqual(logic.checkRegistration(request, Caller("u-1", isAdmin=True)), "u-2")
        plain = logic.parseRegistration({"name": "n", "location": "http://h/x"}, {})
        self.assertEqual(logic.checkRegistration(plain, Caller("u-1")), "u-1")
        self.assertEqual(logic.checkRegistration(plain, None), "system")

    def test_reconcileFile(self) -> None:
        """
        The file's size and MD5 win; declared ones must match them.
        """
        facts = FileFacts(5, "a" * 32)
        request = logic.parseRegistration({"name": "n", "location": "/x"}, {})
        self.assertEqual(logic.reconcileFile(request, facts), (5, "a" * 32))
        matching = logic.parseRegistration({"name": "n", "location": "/x", "size": "5", "checksum": "A" * 32}, {})
        self.assertEqual(logic.reconcileFile(matching, facts), (5, "a" * 32))
        wrong = logic.parseRegistration({"name": "n", "location": "/x", "size": "6"}, {})
        with self.assertRaises(InvalidImageRequest):
            logic.reconcileFile(wrong, facts)


class PermissionTests(SynchronousTestCase):
    def test_canSee(self) -> None:
        """
        Public, own and shared live images are visible; admins reach any live one; deleted ones nobody.
        """
        private = makeImage()
        self.assertTrue(logic.canSee(private, Caller("u-1"), False))
        self.assertFalse(logic.canSee(private, Caller("u-2"), False))
        self.assertTrue(logic.canSee(private, Caller("u-2"), True))
        self.assertTrue(logic.canSee(makeImage(is_public=True), Caller("u-2"), False))
        self.assertTrue(logic.canSee(private, Caller("admin", True), False))
        self.assertFalse(logic.canSee(makeImage(deleted=True), Caller("u-1"), False))

    def test_modifyAndDelete(self) -> None:
        """
        Owners and admins modify; only admins change the owner; protected images are not deleted, even by the operator.
        """
        image = makeImage()
        logic.checkModify(image, Caller("u-1"))
        self.assertRaises(ImageForbidden, logic.checkModify, image, Caller("u-2"))
        change = logic.parseUpdate({"owner": "u-2"}, {})
        self.assertRaises(ImageForbidden, logic.checkModify, image, Caller("u-1"), change)
        logic.checkModify(image, Caller("admin", True), change)
        self.assertRaises(ImageForbidden, logic.checkDelete, makeImage(protected=True), None)
        logic.checkDelete(image, None)

    def test_share(self) -> None:
        """
        The owner, an admin, or a member with can_share changes members.
        """
        image = makeImage()
        logic.checkShare(image, Caller("u-1"), None)
        logic.checkShare(image, Caller("x", True), None)
        logic.checkShare(image, Caller("u-2"), ImageMember("img-1", "u-2", True))
        self.assertRaises(ImageForbidden, logic.checkShare, image, Caller("u-2"), ImageMember("img-1", "u-2", False))
        self.assertRaises(ImageForbidden, logic.checkShare, image, Caller("u-3"), None)

    def test_memberships(self) -> None:
        """
        Membership lists parse to (member, can_share or None), the last entry of a member winning.
        """
        body = {
            "memberships": [
                {"member_id": "a"},
                {"member_id": "b", "can_share": True},
                {"member_id": "a", "can_share": False},
            ]
        }
        self.assertEqual(logic.parseMemberships(body), [("a", False), ("b", True)])
        self.assertIsNone(logic.parseMemberBody(None))
        self.assertTrue(logic.parseMemberBody({"member": {"can_share": True}}))
        self.assertFalse(logic.parseMemberBody({"can_share": False}))


class ListTests(SynchronousTestCase):
    def test_selectAndSort(self) -> None:
        """
        Filters combine; sorting is by the key then id, in the asked direction.
        """
        a = makeImage(id="a", name="a", size=5, created=NOW)
        b = makeImage(id="b", name="b", size=50, created=NOW + timedelta(seconds=1), status="ERROR")
        c = makeImage(id="c", name="c", size=500, created=NOW + timedelta(seconds=2), properties={"OS": "x"})
        everything = [a, b, c]
        self.assertEqual(logic.selectImages(everything, logic.parseListQuery({})), [c, b, a])
        query = logic.parseListQuery({"sort_key": "size", "sort_dir": "asc", "size_min": "6"})
        self.assertEqual(logic.selectImages(everything, query), [b, c])
        self.assertEqual(logic.selectImages(everything, logic.parseListQuery({"status": "KILLED"})), [b])
        self.assertEqual(logic.selectImages(everything, logic.parseListQuery({"property-os": "x"})), [c])

    def test_badQuery(self) -> None:
        """
        Bad parameters are refused naming the parameter.
        """
        for args, field in (
            ({"sort_key": "owner"}, "sort_key"),
            ({"sort_dir": "sideways"}, "sort_dir"),
            ({"size_max": "x"}, "size_max"),
            ({"is_public": "perhaps"}, "is_public"),
        ):
            with self.assertRaises(InvalidImageRequest) as caught:
                logic.parseListQuery(args)
            self.assertEqual(caught.exception.field, field)


class ViewTests(SynchronousTestCase):
    def test_status(self) -> None:
        """
        Registry statuses map to Glance's: AVAILABLE active, UNAVAILABLE saving, ERROR killed, deleted deleted.
        """
        self.assertEqual(
            [logic.glanceStatus(makeImage(status=s)) for s in ("AVAILABLE", "UNAVAILABLE", "ERROR")],
            ["active", "saving", "killed"],
        )
        self.assertEqual(logic.glanceStatus(makeImage(deleted=True)), "deleted")

    def test_headers(self) -> None:
        """
        Headers are X-Image-Meta-<Field> with '-' for '_', values percent-encoded; properties under -Property-.
        """
        image = makeImage(name="a b\u03b1", properties={"ROOT_PARTITION": "1"})
        headers = dict(logic.metaHeaders(image, showLocation=False))
        self.assertEqual(headers["X-Image-Meta-Name"], "a%20b%CE%B1")
        self.assertEqual(headers["X-Image-Meta-Disk-Format"], "diskdump")
        self.assertEqual(headers["X-Image-Meta-Is-Public"], "False")
        self.assertEqual(headers["X-Image-Meta-Created-At"], "2026-01-02T03:04:05+00:00")
        self.assertEqual(headers["X-Image-Meta-Property-ROOT-PARTITION"], "1")
        self.assertNotIn("X-Image-Meta-Location", headers)
        self.assertIn("X-Image-Meta-Location", dict(logic.metaHeaders(image, showLocation=True)))

    def test_headerNames(self) -> None:
        """
        Header name suffixes read as field names and lower-case property keys.
        """
        self.assertEqual(logic.headerFieldName("Disk-Format"), "disk_format")
        self.assertEqual(logic.headerPropertyName("Root-Partition"), "root_partition")
