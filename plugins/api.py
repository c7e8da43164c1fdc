"""
The C{api} plugin: the compute, identity (and later network, image, vmapi)
HTTP APIs on API server nodes (L{web.app}).

Section C{[api]}:
  - C{listen}: the HTTP listener (Twisted endpoint);
  - C{base_url}: the public URL of the API, used in the service catalog and links;
  - C{seed_demo}: on start, create the demo flavors and image, and a demo
    user (token logged) when there are no users yet;
  - C{image_file_roots}: directories below which users of the image API
    may register local image files.
"""

from __future__ import annotations

import attrs
from twisted.application.service import IService
from twisted.plugin import IPlugin
from zope.interface import implementer

from synnefo_twisted.config import Setting, checkEndpoint
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import ISynnefoPlugin


def checkBaseURL(value: str) -> str | None:
    if not value.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL"
    return None


def checkAbsolutePaths(value: list[str]) -> str | None:
    bad = [p for p in value if not p.startswith("/")]
    if bad:
        return f"{bad[0]!r} is not an absolute path"
    return None


SETTINGS: tuple[Setting, ...] = (
    Setting("listen", "str", "tcp:8080:interface=127.0.0.1", "HTTP listener endpoint", check=checkEndpoint),
    Setting("base_url", "str", "http://127.0.0.1:8080", "public URL of the API (catalog, links)", check=checkBaseURL),
    Setting("seed_demo", "bool", True, "create demo flavors, image and (with no users yet) a demo user at start"),
    Setting(
        "image_file_roots",
        "list[str]",
        ["/var/lib/snf-image"],
        "directories below which API users may register file:// images ([] refuses them)",
        check=checkAbsolutePaths,
    ),
)


@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class APIPlugin:
    name: str = "api"
    roles: frozenset[str] = frozenset({"apiserver"})
    description: str = "compute, identity, network and image APIs (Cyclades/Astakos compatible) on Klein"
    requires: frozenset[str] = frozenset({"database", "ganeti"})
    startOrder: int = 60
    section: str | None = "api"
    settings: tuple[Setting, ...] = SETTINGS

    def makeService(self, node: object) -> IService:
        assert isinstance(node, NodeContext)
        from web.service import APIService

        s = node.settings
        return APIService(
            node.reactor,
            node.database,
            s["listen"],
            s["base_url"],
            seedDemo=s["seed_demo"],
            imageFileRoots=s["image_file_roots"],
        )


api = APIPlugin()
