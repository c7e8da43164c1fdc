"""
Tests for L{vncproxy.users}.
"""

import io
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from vncproxy.shacrypt import sha512Crypt
from vncproxy.users import AuthenticationFailed, UsersFile, formatUsers, main, parseUsers

HASH_P = sha512Crypt("p", "fixedsalt")
HASH_Q = sha512Crypt("q", "fixedsalt")


class ParseTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """
        user:hash lines are read; comments and blank lines are skipped; bad lines are reported.
        """
        parsed = parseUsers(f"# comment\n\nu:{HASH_P}\nbad line\nv:$1$md5$x\nw:{HASH_Q}\n")
        self.assertEqual(parsed.users, {"u": HASH_P, "w": HASH_Q})
        self.assertEqual(len(parsed.problems), 2)
        self.assertIn("line 4", parsed.problems[0])
        self.assertIn("'v'", parsed.problems[1])

    def test_roundTrip(self) -> None:
        """
        formatUsers writes what parseUsers reads.
        """
        users = {"b": HASH_P, "a": HASH_Q}
        self.assertEqual(parseUsers(formatUsers(users)).users, users)


class UsersFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()

    def write(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def test_authenticate(self) -> None:
        """
        The right password passes; an unknown user and a wrong password fail with the original's reasons.
        """
        self.write(f"u:{HASH_P}\n")
        users = UsersFile(self.path)
        users.authenticate("u", "p")
        users.authenticate("u", "p")  # second time from the cache
        e = self.assertRaises(AuthenticationFailed, users.authenticate, "x", "p")
        self.assertEqual(str(e), "vncauthproxy authentication failure: user not found")
        e = self.assertRaises(AuthenticationFailed, users.authenticate, "u", "wrong")
        self.assertEqual(str(e), "vncauthproxy authentication failure: wrong password")

    def test_reloadOnChange(self) -> None:
        """
        A change of the file is seen by the next check, with no restart.
        """
        self.write(f"u:{HASH_P}\n")
        users = UsersFile(self.path)
        users.authenticate("u", "p")
        self.write(f"u:{HASH_Q}\nnew:{HASH_P}\n")
        st = os.stat(self.path)
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        self.assertRaises(AuthenticationFailed, users.authenticate, "u", "p")
        users.authenticate("u", "q")
        users.authenticate("new", "p")

    def test_missingFile(self) -> None:
        """
        A missing file means no users (every request fails) until it appears.
        """
        users = UsersFile(self.path)
        self.assertEqual(users.users, {})
        self.assertRaises(AuthenticationFailed, users.authenticate, "u", "p")
        self.write(f"u:{HASH_P}\n")
        users.authenticate("u", "p")
        os.unlink(self.path)
        self.assertRaises(AuthenticationFailed, users.authenticate, "u", "p")


class CommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)

    def test_addListRemove(self) -> None:
        """
        add writes a $6$ line the proxy accepts; list shows users; remove deletes them.
        """
        answers = iter(["pw1", "pw1"])
        self.assertEqual(main(["--file", self.path, "add", "alice"], readPassword=lambda prompt: next(answers)), 0)
        self.patch(sys, "stdin", io.StringIO("pw2\n"))
        self.assertEqual(main(["--file", self.path, "add", "bob", "--password-stdin"]), 0)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        users = UsersFile(self.path)
        users.authenticate("alice", "pw1")
        users.authenticate("bob", "pw2")
        self.out.truncate(0)
        self.out.seek(0)
        self.assertEqual(main(["--file", self.path, "list"]), 0)
        self.assertEqual(self.out.getvalue(), "alice\nbob\n")
        self.assertEqual(main(["--file", self.path, "remove", "alice"]), 0)
        self.assertEqual(sorted(UsersFile(self.path).users), ["bob"])

    def test_errors(self) -> None:
        """
        Removing an unknown user, a bad user name and differing passwords are errors.
        """
        self.assertEqual(main(["--file", self.path, "remove", "nobody"]), 1)
        self.assertEqual(main(["--file", self.path, "add", "a:b"], readPassword=lambda p: "x"), 2)
        answers = iter(["one", "two"])
        self.assertEqual(main(["--file", self.path, "add", "c"], readPassword=lambda p: next(answers)), 1)
        self.assertFalse(os.path.exists(self.path))
        self.assertIn("differ", self.err.getvalue())
