# -*- test-case-name: tests.test_service -*-
"""
A service container whose start and stop are asynchronous and ordered.

Twisted's L{MultiService} ignores the Deferreds its children's
C{startService} return, so "the database is ready before the API listens"
cannot be expressed with it. L{OrderedMultiService} starts children one
after the other, waiting for each, and stops them in reverse order, waiting
for each; a child whose start fails stops the ones already started and
fails the whole start.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IHealthReporter


class ChildStartFailed(Exception):
    """
    A child service failed to start.

    @ivar child: the child's name.
    @ivar failure: the L{Failure} its start produced.
    """

    def __init__(self, child: str, failure: Failure) -> None:
        self.child = child
        self.failure = failure
        super().__init__(f"{child}: {failure.getErrorMessage() or repr(failure.value)}")


@implementer(IHealthReporter)
class _ChildState:
    """
    Where one child is in its life, for /healthz and /metrics.
    """

    def __init__(self, name: str, service: IService) -> None:
        self.healthName = name
        self.service = service
        self.state = "pending"
        self.detail = ""

    def health(self) -> Health:
        if self.state == "running":
            reporter = IHealthReporter(self.service, None)
            if reporter is not None and reporter is not self:
                return reporter.health()
            return Health(True, "running", self.detail)
        return Health(False, self.state, self.detail)


class OrderedMultiService(Service):
    """
    Starts its children in the order they were added, each after the
    previous one's start Deferred fired; stops them in reverse order.
    """

    log = Logger()

    def __init__(self) -> None:
        self._children: list[_ChildState] = []
        self._starting: Deferred[None] | None = None
        self._startedChildren: list[_ChildState] = []

    def addChild(self, name: str, service: IService) -> None:
        if self.running:
            raise RuntimeError("children are added before the service starts")
        if any(c.healthName == name for c in self._children):
            raise ValueError(f"duplicate child {name!r}")
        self._children.append(_ChildState(name, service))

    def childStates(self) -> list[_ChildState]:
        return list(self._children)

    def getServiceNamed(self, name: str) -> IService:
        for child in self._children:
            if child.healthName == name:
                return child.service
        raise KeyError(name)

    def privilegedStartService(self) -> None:
        Service.privilegedStartService(self)
        for child in self._children:
            child.service.privilegedStartService()

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        self._starting = self._startChildren()
        return self._starting

    @inlineCallbacks
    def _startChildren(self) -> Generator[Deferred[Any], Any, None]:
        for child in self._children:
            child.state = "starting"
            self._startedChildren.append(child)
            try:
                yield maybeDeferred(child.service.startService)
            except CancelledError:
                child.state = "stopped"
                raise
            except Exception:
                failure = Failure()
                child.state = "failed"
                child.detail = failure.getErrorMessage() or repr(failure.value)
                raise ChildStartFailed(child.healthName, failure) from None
            child.state = "running"

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        starting, self._starting = self._starting, None
        if starting is not None and not starting.called:
            starting.cancel()
            starting.addErrback(lambda f: f.trap(CancelledError, ChildStartFailed))
        return self._stopChildren()

    @inlineCallbacks
    def _stopChildren(self) -> Generator[Deferred[Any], Any, None]:
        while self._startedChildren:
            child = self._startedChildren.pop()
            if child.state == "failed":
                continue
            child.state = "stopping"
            try:
                yield maybeDeferred(child.service.stopService)
            except Exception:
                self.log.failure("{child} failed to stop cleanly", child=child.healthName)
                child.state = "failed"
                continue
            child.state = "stopped"
