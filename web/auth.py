# -*- test-case-name: tests.web.test_auth -*-
"""
Who is calling: the C{X-Auth-Token} query parameter (or C{token}), else the
C{X-Auth-Token} header, looked up by its hash with expiry
(L{synnefo_twisted.db.repositories.UserRepository.byToken}).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.web.iweb import IRequest

from synnefo_twisted.db.models import User
from synnefo_twisted.db.repositories import UserRepository
from web.faults import Forbidden, Unauthorized
from web.http import queryArg


def requestToken(request: IRequest) -> str | None:
    """
    The token a request carries, or None.
    """
    for name in ("X-Auth-Token", "token"):
        value = queryArg(request, name)
        if value:
            return value
    header = request.getHeader(b"x-auth-token")
    if header:
        return header.decode("latin-1").strip() or None
    return None


class Authenticator:
    """
    Resolve tokens to users.

    A token found valid is remembered for C{cacheSeconds} (as Keystone's
    middleware caches validations), so a busy client costs one lookup per
    period instead of one per request; revoking a token or deactivating a
    user, or a token expiring, therefore takes effect within that time
    (seconds late at most). Unknown tokens are never
    cached.

    @param users: the user repository.
    @param clock: an L{twisted.internet.interfaces.IReactorTime} (token expiry).
    @param cacheSeconds: how long a validation is reused (0: never).
    @param cacheSize: at most this many tokens are remembered.
    """

    def __init__(self, users: UserRepository, clock: Any, cacheSeconds: float = 10.0, cacheSize: int = 10000) -> None:
        self._users = users
        self._clock = clock
        self._cacheSeconds = cacheSeconds
        self._cacheSize = cacheSize
        self._cache: dict[str, tuple[float, User]] = {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    def userForToken(self, token: str) -> Deferred[User | None]:
        if not token:
            return succeed(None)
        now = self._clock.seconds()
        cached = self._cache.get(token)
        if cached is not None:
            if cached[0] > now:
                return succeed(cached[1])
            del self._cache[token]

        def remember(user: User | None) -> User | None:
            if user is not None and self._cacheSeconds > 0:
                if len(self._cache) >= self._cacheSize:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[token] = (now + self._cacheSeconds, user)
            return user

        return self._users.byToken(token, self.now()).addCallback(remember)

    def authenticate(self, request: IRequest) -> Deferred[User]:
        """
        The calling user; fails with L{Unauthorized} (401) when the token is
        missing, unknown, revoked or expired.
        """
        token = requestToken(request)
        if token is None:
            raise Unauthorized()

        def check(user: User | None) -> User:
            if user is None:
                raise Unauthorized("Invalid token")
            return user

        return self.userForToken(token).addCallback(check)


def requireAdmin(user: User) -> User:
    """
    C{user}, when it has the admin role; else L{Forbidden} (403).
    """
    if not user.isAdmin:
        raise Forbidden("Administrator role required")
    return user
