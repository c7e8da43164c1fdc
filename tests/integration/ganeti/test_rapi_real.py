"""
The RAPI contract against the real Ganeti 3.0 test cluster, over HTTPS with
the cluster's certificate pinned; and the TLS policies against it.
"""

from __future__ import annotations

import subprocess

from service_identity import CertificateError
from twisted.internet import (
    reactor,  # tests only: real cluster, real reactor
    tcp,
)
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from synnefo_twisted.ganeti import errors
from synnefo_twisted.ganeti.rapi import RapiClient
from synnefo_twisted.ganeti.tls import RapiTLSPolicy
from tests.ganeti.rapi_contract import ClusterEnv, RapiContractMixin
from tests.integration.ganeti import realcluster


def realClient(user: str, password: str, tls: RapiTLSPolicy | None = None) -> RapiClient:
    policy = tls or RapiTLSPolicy(caPEM=realcluster.pinnedCert())
    return RapiClient.forURL(reactor, realcluster.RAPI_URL, user, password, tls=policy, timeout=20, pollInterval=0.1)


async def quiesce() -> None:
    """
    Wait (at most 2 s) until the RAPI's TLS connections have finished
    closing: Ganeti answers with C{Connection: close}, and the TLS shutdown
    outlives the response by a few milliseconds.
    """
    for _ in range(200):
        if not [s for s in reactor.getReaders() + reactor.getWriters() if isinstance(s, tcp.Client)]:
            return
        await deferLater(reactor, 0.01, lambda: None)


class QuiescingTestCase(TestCase):
    def setUp(self) -> None:
        self.addCleanup(lambda: Deferred.fromCoroutine(quiesce()))


class RealClusterRapiContractTests(RapiContractMixin, QuiescingTestCase):
    """
    The contract suite against the real cluster.
    """

    timeout = 180

    def setUp(self) -> None:
        super().setUp()
        self.client = realClient(realcluster.USER, realcluster.PASSWORD)
        self.readOnly = realClient(realcluster.RO_USER, realcluster.RO_PASSWORD)
        self.badPassword = realClient(realcluster.USER, "wrong-" + realcluster.PASSWORD)
        self.env = ClusterEnv(pnode=realcluster.NODE)


class RealClusterTLSTests(QuiescingTestCase):
    """
    Certificate checking against the real RAPI (self-signed, CN ganeti.example.com).
    """

    async def test_pinned(self) -> None:
        """
        Pinning the cluster's own certificate connects.
        """
        info = await realClient(realcluster.USER, realcluster.PASSWORD).getInfo()
        self.assertIn("name", info)

    async def test_systemCAsRefuse(self) -> None:
        """
        With the system CAs the self-signed certificate is refused (no retry hides it).
        """
        client = realClient(realcluster.USER, realcluster.PASSWORD, RapiTLSPolicy())
        client.readRetries = 0
        with self.assertRaises(errors.RapiConnectionError):
            await client.getInfo()
        # Twisted's host-name check logs service_identity's complaint about
        # the certificate's missing subjectAltName besides failing the chain.
        self.flushLoggedErrors(CertificateError)

    async def test_wrongPinRefuses(self) -> None:
        """
        Pinning another certificate is refused.
        """
        other = subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "/dev/null",
                "-subj",
                "/CN=ganeti.example.com",
                "-days",
                "1",
            ],
            check=True,
            capture_output=True,
        ).stdout
        client = realClient(realcluster.USER, realcluster.PASSWORD, RapiTLSPolicy(caPEM=other))
        client.readRetries = 0
        with self.assertRaises(errors.RapiConnectionError):
            await client.getInfo()

    async def test_verifyDisabled(self) -> None:
        """
        With verification explicitly disabled, any certificate is accepted.
        """
        client = realClient(realcluster.USER, realcluster.PASSWORD, RapiTLSPolicy(verify=False))
        self.assertIn("name", await client.getInfo())
