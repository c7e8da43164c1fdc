# -*- test-case-name: tests.ganeti.test_scripts -*-
"""
C{snf-progress-monitor <instance>}: snf-image's C{PROGRESS_MONITOR}. Reads
the stream of concatenated JSON objects snf-image writes on stdin and
publishes each as it arrives (with C{instance} and C{event_time} added) to
C{ganeti.<prefix>.event.progress} (spec §2.4): C{image-copy-progress},
C{image-info}, C{image-warning}, C{image-error}, C{image-helper}.

It keeps reading to the end of its input whatever happens to the bus, so
snf-image is never blocked; it logs C{[MONITOR] <json>} to stderr; at the
end of the input it waits a bounded time for the confirmations, says on
stderr what was not delivered, and exits 1 in that case.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import Protocol
from twisted.internet.task import react
from twisted.python.failure import Failure

from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.scriptbus import EXCHANGE_TOPOLOGY, loadScriptConfig, nowEventTime

MAX_BUFFER = 1 << 20


class StreamDecoder:
    """
    Splits a byte stream of concatenated JSON objects (with or without
    whitespace between them) into objects, however the bytes are chunked.
    Garbage is reported through C{onGarbage} and skipped up to the next
    C{"{"}.
    """

    def __init__(self, onGarbage: Callable[[str], None]) -> None:
        self._text = ""
        self._raw = b""
        self._decoder = json.JSONDecoder()
        self._onGarbage = onGarbage

    def feed(self, data: bytes) -> Iterator[Any]:
        self._raw += data
        try:
            self._text += self._raw.decode("utf-8")
            self._raw = b""
        except UnicodeDecodeError as e:
            self._text += self._raw[: e.start].decode("utf-8")
            self._raw = self._raw[e.start :]
            if len(self._raw) > 4:
                self._onGarbage(repr(self._raw[:8]))
                self._raw = b""
        while True:
            text = self._text.lstrip()
            self._text = text
            if not text:
                return
            if text[0] != "{":
                nxt = text.find("{")
                self._onGarbage(text[: nxt if nxt >= 0 else 80])
                self._text = text[nxt:] if nxt >= 0 else ""
                continue
            try:
                obj, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                if len(text) > MAX_BUFFER:
                    self._onGarbage(text[:80])
                    nxt = text.find("{", 1)
                    self._text = text[nxt:] if nxt >= 0 else ""
                    continue
                return  # probably incomplete: wait for more
            self._text = text[end:]
            yield obj

    def leftover(self) -> str:
        return (self._text + self._raw.decode("utf-8", "replace")).strip()


def progressMessage(obj: Any, instance: str, now: float) -> tuple[str, dict[str, Any]] | None:
    """
    The routing key and body for one snf-image object, or None for
    something that is not a typed JSON object.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return None
    body = dict(obj)
    body["instance"] = instance
    body["event_time"] = nowEventTime(now)
    return naming.progressRoutingKey(instance), body


class ProgressMonitor(Protocol):
    """
    Reads snf-image's stream and publishes each object on C{bus} as it
    arrives, in order. C{finished} fires with the exit code once the input
    ended and every publish settled (or C{settleTimeout} passed).
    """

    def __init__(
        self,
        reactor: Any,
        bus: Any,
        instance: str,
        stderr: Any,
        clock: Callable[[], float] = time.time,
        settleTimeout: float = 10.0,
    ) -> None:
        self._reactor = reactor
        self.bus = bus
        self.instance = instance
        self.stderr = stderr
        self._now = clock
        self.settleTimeout = settleTimeout
        self.decoder = StreamDecoder(lambda g: self._say(f"[MONITOR] ignored malformed input: {g!r}"))
        self.publishes: list[Deferred[Any]] = []
        self.failures: list[str] = []
        self.sent = 0
        self.finished: Deferred[int] = Deferred()
        self._declared = False
        self._waiting: list[tuple[str, bytes, Deferred[Any]]] = []
        bus.declare(EXCHANGE_TOPOLOGY).addCallbacks(self._declaredOK, self._declareFailed)

    def _say(self, line: str) -> None:
        self.stderr.write(line + "\n")
        self.stderr.flush()

    def _declaredOK(self, _: object) -> None:
        self._declared = True
        waiting, self._waiting = self._waiting, []
        for routingKey, payload, d in waiting:
            self._publish(routingKey, payload, d)

    def _declareFailed(self, f: Failure) -> None:
        waiting, self._waiting = self._waiting, []
        self.failures.append(f"cannot declare the exchange: {f.getErrorMessage()}")
        for _, _, d in waiting:
            if not d.called:
                d.callback(None)

    def _publish(self, routingKey: str, payload: bytes, d: Deferred[Any]) -> None:
        published = self.bus.publish(naming.EXCHANGE, routingKey, payload, None, True)
        published.addCallbacks(self._published, self._failed, callbackArgs=(d,), errbackArgs=(d,))

    def dataReceived(self, data: bytes) -> None:
        for obj in self.decoder.feed(data):
            message = progressMessage(obj, self.instance, self._now())
            if message is None:
                self._say(f"[MONITOR] ignored (not a typed object): {json.dumps(obj)[:200]}")
                continue
            routingKey, body = message
            self._say(f"[MONITOR] {json.dumps(body)}")
            d: Deferred[Any] = Deferred()
            self.publishes.append(d)
            payload = json.dumps(body).encode("utf-8")
            if self._declared:
                self._publish(routingKey, payload, d)
            else:
                self._waiting.append((routingKey, payload, d))

    def _published(self, result: Any, d: Deferred[Any]) -> None:
        self.sent += 1
        if not d.called:
            d.callback(None)

    def _failed(self, f: Failure, d: Deferred[Any]) -> None:
        self.failures.append(f.getErrorMessage())
        if not d.called:
            d.callback(None)

    def connectionLost(self, reason: Any = None) -> None:
        if self.decoder.leftover():
            self._say(f"[MONITOR] ignored truncated input: {self.decoder.leftover()[:200]!r}")
        settled: Deferred[Any] = DeferredList(self.publishes, consumeErrors=True)
        settled.addTimeout(self.settleTimeout, self._reactor)

        def done(result: Any) -> None:
            unsent = len(self.publishes) - self.sent
            if unsent:
                reason = self.failures[-1] if self.failures else f"no confirmation within {self.settleTimeout}s"
                self._say(
                    f"snf-progress-monitor: {unsent} of {len(self.publishes)} messages for {self.instance} not published ({reason})"
                )
            self.finished.callback(1 if unsent else 0)

        settled.addBoth(done)


def main(argv: Sequence[str] | None = None) -> None:
    """
    Console script C{snf-progress-monitor INSTANCE}.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: snf-progress-monitor INSTANCE_NAME  (reads snf-image's JSON stream on stdin)\n")
        sys.exit(2)
    instance = args[0]

    async def run(reactor: Any) -> None:
        from twisted.internet import stdio

        from synnefo_twisted.bus import openBus

        try:
            config = loadScriptConfig(dict(os.environ))
        except Exception as e:
            sys.stderr.write(f"snf-progress-monitor: cannot read the configuration ({e})\n")
            raise SystemExit(1) from e
        if config.busUrl.startswith("memory:"):
            sys.stderr.write("snf-progress-monitor: [bus] url is memory://, which another process cannot reach\n")
            raise SystemExit(1)
        bus = openBus(config.busUrl, reactor)
        bus.startService().addErrback(lambda f: None)
        monitor = ProgressMonitor(reactor, bus, instance, sys.stderr)
        stdio.StandardIO(monitor, stdin=0, stdout=os.open(os.devnull, os.O_WRONLY), reactor=reactor)  # type: ignore[call-arg]
        code = await monitor.finished
        stopping = bus.stopService()
        if isinstance(stopping, Deferred):
            stopping.addTimeout(3, reactor)
            try:
                await stopping
            except Exception:
                pass
        if code:
            raise SystemExit(code)

    react(lambda reactor: Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main()
