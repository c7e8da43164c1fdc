"""
Tests for L{synnefo_twisted.backends.BackendRegistry}, over the embedded
SQLite database.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.migrations import migrate
from synnefo_twisted.db.repositories import BackendRepository
from synnefo_twisted.interfaces import IBackendRegistry


class BackendRegistryTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        path = Path(self.mktemp()).resolve()
        self.db = openDatabase(f"sqlite:///{path}/snf.db", reactor)
        yield self.db.startService()
        self.addCleanup(self.db.stopService)
        yield migrate(self.db)
        self.made: list[tuple[int, str]] = []

        def factory(reactor, backend):
            client = object()
            self.made.append((backend.id, backend.rapi_url))
            return client

        self.registry = BackendRegistry(self.db, "snf-", reactor, clientFactory=factory)

    def test_interface(self) -> None:
        """
        The registry provides L{IBackendRegistry}.
        """
        self.assertTrue(verifyObject(IBackendRegistry, self.registry))
        self.assertEqual(self.registry.prefix, "snf-")

    @inlineCallbacks
    def test_backendsAndClients(self):
        """
        Backends come from the table in id order; a client is made once per
        backend and made again when its URL or credentials change.
        """
        repo = BackendRepository(self.db)
        one = yield repo.add("cluster1.example.org", "https://10.0.0.1:5080", username="u", password="p")
        two = yield repo.add("cluster2.example.org", "https://10.0.0.2:5080", verifyTLS=False)
        backends = yield self.registry.backends()
        self.assertEqual([b.clustername for b in backends], ["cluster1.example.org", "cluster2.example.org"])
        first = self.registry.clientFor(one)
        self.assertIs(self.registry.clientFor(one), first)
        self.registry.clientFor(two)
        moved = yield repo.modify(one.id, rapi_url="https://10.0.0.9:5080")
        self.assertIsNot(self.registry.clientFor(moved), first)
        self.assertEqual(
            self.made,
            [(one.id, "https://10.0.0.1:5080"), (two.id, "https://10.0.0.2:5080"), (one.id, "https://10.0.0.9:5080")],
        )

    @inlineCallbacks
    def test_defaultFactory(self):
        """
        Without a factory the registry builds a real RAPI client for the row.
        """
        from synnefo_twisted.interfaces import IGanetiClient

        registry = BackendRegistry(self.db, "snf-", reactor)
        backend = yield BackendRepository(self.db).add("c.example.org", "https://127.0.0.1:5080", verifyTLS=False)
        client = registry.clientFor(backend)
        self.assertTrue(IGanetiClient.providedBy(client))
        self.assertEqual(client.baseUrl, "https://127.0.0.1:5080")

    @inlineCallbacks
    def test_pinnedCertificate(self):
        """
        A backend with a pinned certificate gets a TLS policy trusting
        exactly that certificate; without a pin the system trust store;
        with verification off, none. Changing the pin rebuilds the client.
        """
        from twisted.internet.ssl import Certificate, KeyPair

        from synnefo_twisted.backends import tlsPolicyFor

        pem = Certificate(KeyPair.generate(size=2048).selfSignedCert(1, CN="c.example.org").original).dumpPEM()
        repo = BackendRepository(self.db)
        backend = yield repo.add("c.example.org", "https://10.0.0.1:5080", caPEM=pem.decode())
        policy = tlsPolicyFor(backend)
        self.assertEqual((policy.verify, policy.caPEM), (True, pem))
        first = self.registry.clientFor(backend)
        self.assertIs(self.registry.clientFor(backend), first)
        unpinned = yield repo.modify(backend.id, ca_pem="")
        self.assertIsNot(self.registry.clientFor(unpinned), first)
        policy = tlsPolicyFor(unpinned)
        self.assertEqual((policy.verify, policy.caPEM), (True, None))
        unverified = yield repo.modify(backend.id, verify_tls=False)
        self.assertFalse(tlsPolicyFor(unverified).verify)
