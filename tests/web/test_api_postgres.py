"""
The API tests again on the real PostgreSQL server (C{realservices.PG_URL}),
each in a schema of its own: the same handlers and repositories, the other
driver (boolean, timestamp and conflict handling differ between the two).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.migrations import migrate
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath
from tests.web import (
    test_auth,
    test_compute,
    test_identity,
    test_image,
    test_network,
    test_openapi,
    test_schemathesis,
    test_servers,
)


class PostgresMixin(SchemaMixin):
    poolSize = 2

    def openDatabase(self) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._openPostgres())

    async def _openPostgres(self) -> Any:
        database = openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), reactor, poolSize=self.poolSize)
        await database.startService()
        await migrate(database)
        return database


class AuthTests(PostgresMixin, test_auth.AuthTests):
    """
    Token authentication on PostgreSQL.
    """


class TokensTests(PostgresMixin, test_identity.TokensTests):
    """
    Identity tokens on PostgreSQL.
    """


class CatalogTests(PostgresMixin, test_identity.CatalogTests):
    """
    User catalogs on PostgreSQL.
    """


class FlavorTests(PostgresMixin, test_compute.FlavorTests):
    """
    Flavors on PostgreSQL.
    """


class ImageTests(PostgresMixin, test_compute.ImageTests):
    """
    Images on PostgreSQL.
    """


class KeyPairTests(PostgresMixin, test_compute.KeyPairTests):
    """
    Key pairs on PostgreSQL.
    """


class LimitTests(PostgresMixin, test_compute.LimitTests):
    """
    Limits on PostgreSQL.
    """


class OpenAPIDocumentTests(PostgresMixin, test_openapi.OpenAPIDocumentTests):
    """
    The OpenAPI document on PostgreSQL (public routes need no token).
    """


class ServerCreateTests(PostgresMixin, test_servers.CreateTests):
    """
    Server creation (quota, VMAPI parameters) on PostgreSQL.
    """


class ServerReadTests(PostgresMixin, test_servers.ReadTests):
    """
    Server listing (changes-since, pagination) and views on PostgreSQL.
    """


class ServerDetailListingTests(PostgresMixin, test_servers.DetailListingTests):
    """
    Detailed server listings follow changes on PostgreSQL.
    """


class StaleServerDetailListingTests(PostgresMixin, test_servers.StaleDetailListingTests):
    """
    Listings allowed to be late for other processes' writes show this
    process's own at once on PostgreSQL.
    """


class ServerWriteTests(PostgresMixin, test_servers.WriteTests):
    """
    Rename, delete, password, metadata and tags on PostgreSQL.
    """


class ServerActionTests(PostgresMixin, test_servers.ActionTests):
    """
    Server actions on PostgreSQL.
    """


class ServerNetworkSettingsTests(PostgresMixin, test_servers.ServerNetworkSettingsTests):
    """
    Default and forced server networks on PostgreSQL (pool rows locked in the create transaction).
    """


class ImageRegisterTests(PostgresMixin, test_image.RegisterTests):
    """
    Image registration (files, URLs, JSON, refusals) on PostgreSQL.
    """


class ImageReadTests(PostgresMixin, test_image.ReadTests):
    """
    Image lists, filters, HEAD/GET and visibility on PostgreSQL.
    """


class ImageUpdateDeleteTests(PostgresMixin, test_image.UpdateDeleteTests):
    """
    Image updates, protection and deletion on PostgreSQL.
    """


class ImageMemberTests(PostgresMixin, test_image.MemberTests):
    """
    Image members and shared images on PostgreSQL.
    """


class NetworkTests(PostgresMixin, test_network.NetworkTests):
    """
    Networks (types, quota, isolation, deletion) on PostgreSQL.
    """


class SubnetTests(PostgresMixin, test_network.SubnetTests):
    """
    Subnets (pools, IPv6, refusals) on PostgreSQL.
    """


class PortTests(PostgresMixin, test_network.PortTests):
    """
    Ports (allocation, attach and detach jobs) on PostgreSQL.
    """


class FloatingIPTests(PostgresMixin, test_network.FloatingIPTests):
    """
    Floating IPs (network and compute flavours, quota, server actions) on PostgreSQL.
    """


class NetworkConcurrencyTests(PostgresMixin, test_network.ConcurrencyTests):
    """
    Parallel allocations racing on PostgreSQL with ten connections: the
    row locks on the pools and quota holdings let exactly the free values
    through, each once.
    """

    poolSize = 10


class NetworkChangesSinceTests(PostgresMixin, test_network.ChangesSinceTests):
    """
    changes-since on the network lists on PostgreSQL (timestamps with time zone).
    """


class ServerNetworkTests(PostgresMixin, test_network.ServerNetworkTests):
    """
    Servers created on networks (addresses from the pools) on PostgreSQL.
    """


class NetworkReassignTests(PostgresMixin, test_network.ReassignTests):
    """
    Reassigning networks and floating IPs (quota moves) on PostgreSQL.
    """


class SchemathesisTests(PostgresMixin, test_schemathesis.SchemathesisTests):
    """
    The bounded schemathesis run on PostgreSQL (its types, encodings and limits differ from SQLite's).
    """
