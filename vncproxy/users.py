# -*- test-case-name: tests.vncproxy.test_users -*-
"""
The users file of the control socket: one C{user:$6$salt$hash} line per
user (sha512-crypt, the format of snf-vncauthproxy's C{vncauthproxy-passwd}).
Blank lines and lines starting with C{#} are ignored.

Unlike the original (read once at start-up), L{UsersFile} notices when the
file changes (inode, size or modification time) and reloads it before the
next check. L{main} is the C{snf-vncproxy-users} command that adds, removes
and lists users.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
from twisted.logger import Logger

from vncproxy.shacrypt import isSha512Hash, makeHash, verify

log = Logger()

_CACHE_MAX = 256


@attrs.frozen
class ParsedUsers:
    """
    The result of parsing a users file.

    @ivar users: user name -> stored hash.
    @ivar problems: one sentence per line that was skipped.
    """

    users: dict[str, str]
    problems: tuple[str, ...]


def parseUsers(text: str) -> ParsedUsers:
    """
    Parse the text of a users file (pure).
    """
    users: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            problems.append(f"line {number}: expected user:$6$salt$hash")
            continue
        if not isSha512Hash(hashed):
            problems.append(f"line {number}: the hash of user {user!r} is not a $6$ sha512-crypt hash")
            continue
        if user in users:
            problems.append(f"line {number}: user {user!r} repeated; the later line wins")
        users[user] = hashed
    return ParsedUsers(users, tuple(problems))


def formatUsers(users: dict[str, str]) -> str:
    """
    The text of a users file (sorted by user).
    """
    return "".join(f"{user}:{hashed}\n" for user, hashed in sorted(users.items()))


class AuthenticationFailed(Exception):
    """
    The control request's credentials are not accepted; C{str()} is the reason.
    """


class UsersFile:
    """
    The users file, reloaded when it changes.

    Checking a password runs sha512-crypt (about 5 ms); successful checks
    are remembered (keyed by an HMAC of the password under a per-process
    random key, never the password) so repeated requests stay fast.
    """

    def __init__(self, path: str | os.PathLike[str], stat: Callable[[str], os.stat_result] = os.stat) -> None:
        self.path = os.fspath(path)
        self._stat = stat
        self._signature: tuple[int, int, int] | None = None
        self._missingLogged = False
        self._users: dict[str, str] = {}
        self._cacheKey = os.urandom(32)
        self._verified: dict[tuple[str, str, bytes], None] = {}

    @property
    def users(self) -> dict[str, str]:
        """
        The current users (reloading the file first if it changed).
        """
        self._refresh()
        return dict(self._users)

    def _refresh(self) -> None:
        try:
            st = self._stat(self.path)
        except OSError as e:
            if self._signature is not None or not self._missingLogged:
                log.warn(
                    "vncproxy users file {path} cannot be read ({error}): every control request will fail",
                    path=self.path,
                    error=e.strerror,
                )
                self._missingLogged = True
            self._signature = None
            self._users = {}
            return
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if signature == self._signature:
            return
        try:
            text = Path(self.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            log.warn("vncproxy users file {path} cannot be read: {error}", path=self.path, error=str(e))
            self._signature = None
            self._users = {}
            return
        parsed = parseUsers(text)
        for problem in parsed.problems:
            log.warn("vncproxy users file {path}, {problem}", path=self.path, problem=problem)
        if not parsed.users:
            log.warn("vncproxy users file {path} has no users: every control request will fail", path=self.path)
        else:
            log.info("vncproxy users file {path} loaded: {count} user(s)", path=self.path, count=len(parsed.users))
        self._signature = signature
        self._missingLogged = False
        self._users = parsed.users
        self._verified.clear()

    def authenticate(self, user: str, password: str) -> None:
        """
        Check C{user}'s C{password}.

        @raise AuthenticationFailed: with the original's reason sentences.
        """
        self._refresh()
        hashed = self._users.get(user)
        if hashed is None:
            raise AuthenticationFailed("vncauthproxy authentication failure: user not found")
        key = (user, hashed, hmac.new(self._cacheKey, password.encode("utf-8"), hashlib.sha256).digest())
        if key in self._verified:
            return
        if not verify(password, hashed):
            raise AuthenticationFailed("vncauthproxy authentication failure: wrong password")
        if len(self._verified) >= _CACHE_MAX:
            self._verified.pop(next(iter(self._verified)))
        self._verified[key] = None


# --------------------------------------------------------------------------
# snf-vncproxy-users
# --------------------------------------------------------------------------

DEFAULT_USERS_FILE = "/var/lib/vncauthproxy/users"


def _readFile(path: str) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    parsed = parseUsers(text)
    for problem in parsed.problems:
        print(f"warning: {path}: {problem}", file=sys.stderr)
    return parsed.users


def _writeFile(path: str, users: dict[str, str]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".users.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(formatUsers(users))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None, readPassword: Callable[[str], str] = getpass.getpass) -> int:
    """
    C{snf-vncproxy-users [--file F] add USER [--password-stdin] | remove USER | list}.
    """
    parser = argparse.ArgumentParser(
        prog="snf-vncproxy-users",
        description="Manage the users of the VNC proxy's control socket ([vncproxy] users_file).",
    )
    parser.add_argument("--file", "-f", default=DEFAULT_USERS_FILE, help=f"users file (default {DEFAULT_USERS_FILE})")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add a user or change its password")
    add.add_argument("user")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    remove = sub.add_parser("remove", help="remove a user")
    remove.add_argument("user")
    sub.add_parser("list", help="list the users")
    args = parser.parse_args(argv)

    if args.command == "list":
        for name in sorted(_readFile(args.file)):
            print(name)
        return 0

    user: str = args.user
    if not user or ":" in user or any(c.isspace() for c in user):
        print(f"error: invalid user name {user!r} (no ':' or white space)", file=sys.stderr)
        return 2
    users = _readFile(args.file)
    if args.command == "remove":
        if user not in users:
            print(f"error: no user {user!r} in {args.file}", file=sys.stderr)
            return 1
        del users[user]
        _writeFile(args.file, users)
        print(f"removed {user} from {args.file}")
        return 0

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = readPassword(f"password for {user}: ")
        if readPassword("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 1
    if not password:
        print("error: empty password", file=sys.stderr)
        return 1
    existed = user in users
    users[user] = makeHash(password)
    _writeFile(args.file, users)
    print(f"{'updated' if existed else 'added'} {user} in {args.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
