# -*- test-case-name: tests.integration.ganeti.test_rapi_real -*-
"""
HTTPS policies for talking to a Ganeti RAPI: system CAs (with host-name
checking), a pinned CA or certificate file, or no verification at all when
the configuration says so.

A pin is checked without the host name: Ganeti's default certificate is
self-signed, names C{ganeti.example.com} in its CN only and has no
subjectAltName. Checked against the real cluster, Twisted's host-name
verification does not even reject such a certificate (service_identity
raises an error type the verify callback does not handle, so it is only
logged), so host-name checking of a pinned certificate would be a false
promise. The pin itself is the identity check: only a certificate that
chains to the pinned one is accepted.
"""

from __future__ import annotations

import ipaddress

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import Certificate, CertificateOptions
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer


@implementer(IOpenSSLClientConnectionCreator)
class _ContextCreator:
    def __init__(self, options: CertificateOptions, hostname: str) -> None:
        self._context = options.getContext()
        self._hostname = hostname

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        try:
            ipaddress.ip_address(self._hostname)
        except ValueError:
            connection.set_tlsext_host_name(self._hostname.encode("idna"))
        connection.set_connect_state()
        return connection


@implementer(IPolicyForHTTPS)
class RapiTLSPolicy:
    """
    How the RAPI client checks the server.

    @param verify: False disables verification entirely (explicit
        configuration only).
    @param caPEM: PEM bytes of the CA or the server's own certificate to
        trust instead of the system CAs (a PEM holding a key too, like
        Ganeti's C{rapi.pem}, is fine).
    """

    def __init__(self, verify: bool = True, caPEM: bytes | None = None) -> None:
        self.verify = verify
        self.caPEM = caPEM
        self._system = BrowserLikePolicyForHTTPS()

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        host = hostname.decode("ascii")
        if not self.verify:
            return _ContextCreator(CertificateOptions(verify=False), host)
        if self.caPEM is None:
            return self._system.creatorForNetloc(hostname, port)
        trusted = Certificate.loadPEM(self.caPEM)
        options = CertificateOptions(verify=True, caCerts=[trusted.original], requireCertificate=True)
        return _ContextCreator(options, host)
