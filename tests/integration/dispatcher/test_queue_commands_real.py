"""
The queue commands and the status round trip on the real RabbitMQ
(C{realservices.AMQP_URL}), each test with a queue prefix of its own.
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.trial.unittest import TestCase

from synnefo_twisted.bus import openBus
from tests.dispatcher.test_queue_commands import QueueCommandsMixin
from tests.integration import realservices


class RabbitQueueCommandsTests(QueueCommandsMixin, TestCase):
    def makeBus(self) -> Any:
        return openBus(realservices.AMQP_URL, self.reactor)

    def prefix(self) -> str:
        return "q" + uuid.uuid4().hex[:10] + "-"
