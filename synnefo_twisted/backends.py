# -*- test-case-name: tests.test_backends -*-
"""
The Ganeti backend registry: the clusters in the C{backends} table, each
with one RAPI client, built on first use and rebuilt when the backend's
row changes (new URL or credentials).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from synnefo_twisted.db.models import Backend
from synnefo_twisted.db.repositories import BackendRepository
from synnefo_twisted.interfaces import IBackendRegistry, IGanetiClient


def tlsPolicyFor(backend: Backend) -> Any:
    """
    The L{RapiTLSPolicy} of a backend row: no check when C{verify_tls} is
    false, else the pinned certificate (C{ca_pem}) or the system trust store.
    """
    from synnefo_twisted.ganeti.tls import RapiTLSPolicy

    return RapiTLSPolicy(verify=backend.verify_tls, caPEM=backend.ca_pem.encode() or None)


def rapiClientFor(reactor: Any, backend: Backend) -> IGanetiClient:
    """
    A RAPI client for a backend row: its URL and credentials, and TLS
    verified (against the pinned certificate when the row has one) unless
    the row explicitly disables verification.
    """
    from synnefo_twisted.ganeti.rapi import RapiClient

    return RapiClient.forURL(
        reactor,
        backend.rapi_url,
        backend.username or None,
        backend.password or None,
        tls=tlsPolicyFor(backend),
    )


@implementer(IBackendRegistry)
class BackendRegistry:
    """
    @param database: the L{IDatabase} holding the C{backends} table.
    @param prefix: the Ganeti name prefix (C{[ganeti] prefix}).
    @param clientFactory: C{clientFactory(reactor, backend)} → L{IGanetiClient}.
    """

    def __init__(
        self,
        database: Any,
        prefix: str,
        reactor: Any,
        clientFactory: Callable[[Any, Backend], IGanetiClient] = rapiClientFor,
    ) -> None:
        self.prefix = prefix
        self._repository = BackendRepository(database)
        self._reactor = reactor
        self._clientFactory = clientFactory
        self._clients: dict[int, tuple[tuple[str, str, str, bool, str], IGanetiClient]] = {}

    def backends(self) -> Deferred[list[Backend]]:
        return self._repository.list()

    def clientFor(self, backend: Backend) -> IGanetiClient:
        key = (backend.rapi_url, backend.username, backend.password, backend.verify_tls, backend.ca_pem)
        cached = self._clients.get(backend.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        client = self._clientFactory(self._reactor, backend)
        self._clients[backend.id] = (key, client)
        return client


async def _register(
    repository: BackendRepository, clustername: str, rapiURL: str, username: str, password: str
) -> Backend:
    existing = await repository.byClustername(clustername)
    if existing is None:
        return await repository.add(
            clustername,
            rapiURL,
            username=username,
            password=password,
            verifyTLS=False,
            hypervisor="kvm",
            simulated=True,
        )
    if (existing.rapi_url, existing.username, existing.password) == (rapiURL, username, password):
        return existing
    changed = await repository.modify(existing.id, rapi_url=rapiURL, username=username, password=password)
    assert changed is not None
    return changed


def registerSimulatedBackend(
    database: Any, clustername: str, rapiURL: str, username: str, password: str
) -> Deferred[Backend]:
    """
    Make sure the simulated cluster is a backend row (the first one on a
    fresh embedded node): added when missing, its URL and credentials
    updated when they changed. Plain HTTP on loopback, so no TLS check.
    """
    return Deferred.fromCoroutine(_register(BackendRepository(database), clustername, rapiURL, username, password))
