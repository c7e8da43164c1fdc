"""
A bounded schemathesis run against C{/openapi.json}: every documented
operation gets generated requests (positive and negative, a few examples
each, with a valid admin token) over real HTTP, and none may answer a
server error. C{501 notImplemented} is the one 5xx allowed: it is the
deliberate answer of what Synnefo does not implement either (C{POST
/compute/v2.0/images}, image data uploads), never an accident.

The API is served by this process's reactor on loopback; schemathesis runs
in a child process (its CLI) so the reactor keeps serving meanwhile.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.server import Site

from tests.web.test_servers import ServersTestCase

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"

# generated cases per operation and phase (the whole run stays well under a minute) and the seed;
# SNF_SCHEMATHESIS_EXAMPLES and SNF_SCHEMATHESIS_SEED override them for a deeper or different run
MAX_EXAMPLES = int(os.environ.get("SNF_SCHEMATHESIS_EXAMPLES", "4"))
SEED = int(os.environ.get("SNF_SCHEMATHESIS_SEED", "20261207"))

CONFIG = """\
[checks.not_a_server_error]
expected-statuses = ["1xx", "2xx", "3xx", "4xx", "501"]
"""


class QuietSite(Site):
    def log(self, request: object) -> None:
        pass


class SchemathesisTests(ServersTestCase):
    timeout = 240

    async def test_noServerErrors(self) -> None:
        """
        Generated requests to every operation of /openapi.json never get a server error (5xx other than 501).
        """
        created = await self.create(name="fuzzed", metadata={"k": "v"}, tags=["t"])
        self.assertTrue(created["id"])
        port = reactor.listenTCP(0, QuietSite(self.app.resource()), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}"
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        config = workdir / "schemathesis.toml"
        config.write_text(CONFIG)
        args = [
            "--no-color",
            "--config-file",
            str(config),
            "run",
            f"{base}/openapi.json",
            "--url",
            base,
            "--checks",
            "not_a_server_error",
            "--header",
            f"X-Auth-Token: {self.adminToken}",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--no-shrink",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--report",
            "junit",
            "--report-dir",
            str(workdir),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}
        out, err, code = await getProcessOutputAndValue(str(SCHEMATHESIS), args, env=env, path=str(workdir))
        text = out.decode("utf-8", "replace")
        self.assertIn("Tested: ", text, err.decode("utf-8", "replace")[-2000:])
        self.assertEqual(code, 0, text[-6000:])
        self.assertNotIn("Server error", text)
