# -*- test-case-name: tests.db.test_changes -*-
"""
A database-wide change stamp: one cheap query, no table read, whose answer
is equal at two moments only if no data change was committed between them.

An answer computed from rows read I{after} a stamp was taken is still the
answer while a later stamp equals that one (nothing changed since the
stamp, so nothing changed since the rows were read either). Nothing is
written to get it, so it adds no contention to writers; it is conservative
(any committed change anywhere in the database, or in the PostgreSQL
cluster, gives a new stamp), never stale.

  - SQLite: C{PRAGMA data_version} (changes by I{other} connections, other
    processes on the same file) with C{total_changes()} (rows inserted,
    updated or deleted by this process's one connection since it was
    opened, rolled back ones included) and the number of that connection
    (L{SQLiteDatabase.generation}: counts start again on a new one). Every statement of this process
    goes through that connection, one at a time (L{SQLiteDatabase} holds
    its lock), so the pair is read between transactions.
  - PostgreSQL: C{pg_current_snapshot()} (PostgreSQL 13 and later): its
    C{xmax} (one past the highest completed transaction id) and its list of
    transactions in progress. A commit either removes a listed transaction
    or raises C{xmax}; equal snapshots therefore see the same committed
    data. Transaction ids are cluster-wide: a commit in another database of
    the cluster also gives a new stamp (a lost reuse, never a wrong one).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from synnefo_twisted.interfaces import IDatabase

log = Logger()

_QUERIES = {
    "sqlite": "SELECT (SELECT data_version FROM pragma_data_version), total_changes()",
    "postgresql": "SELECT pg_current_snapshot()::text",
}


def changeStamp(database: Any) -> Deferred[Hashable | None]:
    """
    The change stamp of an L{IDatabase} (not of an open transaction: its
    own uncommitted writes would not show), or None when its dialect has
    none (then nothing may be reused).
    """
    sql = _QUERIES.get(getattr(database, "dialect", ""))
    if sql is None or not IDatabase.providedBy(database):
        return succeed(None)
    generation = getattr(database, "generation", None)

    def stamp(rows: list[tuple[Any, ...]]) -> Hashable | None:
        if getattr(database, "generation", None) != generation:
            return None
        return (database.dialect, generation, *rows[0])

    d = cast(Deferred[Any], database.runQuery(sql))
    return d.addCallback(stamp)


class ChangeStamps:
    """
    L{changeStamp} of one database for many concurrent callers, with at most
    one stamp query in flight: the callers that ask while one runs share the
    next one.

    With C{maxAge} 0 (strict), a caller is only ever answered by a query sent
    I{after} it asked (an answer read before a caller asked could miss a
    change committed just before), so the answers are as fresh as
    L{changeStamp}'s.

    With C{maxAge} above 0, a stamp read by a query sent at most C{maxAge}
    seconds ago answers at once, without a query, joined with the count of
    writes made through the same database object (its C{writes}, bumped
    before a writer learns its outcome): this process's own writes are
    therefore seen at once (a client reads what it just wrote), and writes
    by other processes (the dispatcher of a logic node, another API node,
    C{snf-manage}) within C{maxAge} seconds. Under load that is one stamp
    query per C{maxAge} instead of one per request.

    @param database: the L{IDatabase}.
    @param clock: an L{twisted.internet.interfaces.IReactorTime}; needed
        only with C{maxAge}.
    @param maxAge: how old a stamp may be when it answers, in seconds.
    """

    def __init__(self, database: Any, clock: IReactorTime | None = None, maxAge: float = 0.0) -> None:
        if maxAge < 0:
            raise ValueError("maxAge must not be negative")
        if maxAge > 0 and clock is None:
            raise ValueError("a clock is needed with maxAge")
        self._database = database
        self._clock = clock
        self._maxAge = maxAge
        self._waiting: list[Deferred[Hashable | None]] = []
        self._running = False
        # the last stamp read and when its query was sent
        self._fresh: tuple[float, Hashable] | None = None

    def _withWrites(self, stamp: Hashable | None) -> Hashable | None:
        if stamp is None:
            return None
        return (stamp, getattr(self._database, "writes", None))

    def current(self) -> Deferred[Hashable | None]:
        """
        A Deferred with the stamp: read by a query sent after this call, or
        with C{maxAge}, at most that old.
        """
        fresh = self._fresh
        if fresh is not None:
            assert self._clock is not None
            if self._clock.seconds() - fresh[0] <= self._maxAge:
                return succeed(self._withWrites(fresh[1]))
            self._fresh = None
        d: Deferred[Hashable | None] = Deferred()
        self._waiting.append(d)
        if not self._running:
            self._send()
        return d

    def _send(self) -> None:
        batch, self._waiting = self._waiting, []
        self._running = True
        sentAt = self._clock.seconds() if self._clock is not None else 0.0

        def deliver(result: object) -> None:
            self._running = False
            if self._maxAge > 0 and result is not None and not isinstance(result, Failure):
                self._fresh = (sentAt, result)
            answer = result if isinstance(result, Failure) else self._withWrites(result)
            live = [d for d in batch if not d.called]  # a caller that went away (cancelled) is left alone
            if isinstance(result, Failure) and not live:
                log.failure("change stamp (no caller left to tell)", result)
            for d in live:
                if isinstance(answer, Failure):
                    d.errback(answer)
                else:
                    d.callback(answer)
            if self._waiting:
                fresh = self._fresh
                if fresh is not None and self._clock is not None and self._clock.seconds() - fresh[0] <= self._maxAge:
                    # asked while the query ran, which is within maxAge of them
                    waiting, self._waiting = self._waiting, []
                    for d in waiting:
                        d.callback(self._withWrites(fresh[1]))
                else:
                    self._send()

        changeStamp(self._database).addBoth(deliver)
