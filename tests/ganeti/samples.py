"""
Real Ganeti 3.0.2 artefacts captured from the test cluster (job-queue files,
a config.data, a hook environment), for the unit tests.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.python.filepath import FilePath

SAMPLES = FilePath(__file__).sibling("samples")


def sampleBytes(name: str) -> bytes:
    return SAMPLES.child(name).getContent()


def sampleJSON(name: str) -> Any:
    return json.loads(sampleBytes(name))


QUEUE_FILES = sorted(p.basename() for p in SAMPLES.globChildren("job-*.queuefile.json"))
