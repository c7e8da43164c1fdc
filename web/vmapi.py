# -*- test-case-name: tests.web.test_vmapi -*-
"""
The VMAPI (spec §1.11): C{GET /vmapi/v1.0/server-params/<key>} serves the
one-time creation parameters of a new server (C{img_passwd},
C{img_personality}, ...) that snf-image fetches from the Ganeti osparam
C{config_url}, so that secrets never travel in Ganeti's job queue. The
key is a random 128-bit value known only to the instance's OS parameters;
the parameters are deleted by the first successful read (404 afterwards)
or when they expire.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from twisted.web.iweb import IRequest

from synnefo_twisted.db.servers import ServerParamsRepository
from web.faults import ItemNotFound
from web.routing import Router

PREFIX = "/vmapi/v1.0"
PARAMS_PATH = f"{PREFIX}/server-params"

_KEY = re.compile(r"^[0-9a-f]{32}$")


class VMAPI:
    """
    @param clock: an C{IReactorTime} (expiry of the parameters).
    """

    def __init__(self, database: Any, clock: Any) -> None:
        self._params = ServerParamsRepository(database)
        self._clock = clock

    def register(self, router: Router) -> None:
        router.add(
            "GET",
            f"{PARAMS_PATH}/<config_key>",
            self.serverParams,
            "one-time server creation parameters (config_url)",
            auth="none",
            tag="vmapi",
        )

    async def serverParams(self, request: IRequest, config_key: str) -> dict[str, Any]:
        if not _KEY.match(config_key):
            raise ItemNotFound("No such server parameters.")
        params = await self._params.take(config_key, datetime.fromtimestamp(self._clock.seconds(), UTC))
        if params is None:
            raise ItemNotFound("No such server parameters.")
        return params
