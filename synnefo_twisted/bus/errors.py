# -*- test-case-name: tests.bus.test_memory -*-
"""
Errors raised by L{synnefo_twisted.interfaces.IMessageBus} providers.
"""

from __future__ import annotations


class BusError(Exception):
    """
    Base class of every message bus error.
    """


class PublishFailed(BusError):
    """
    A publish was not confirmed: the broker nacked it, the exchange does not
    exist, or the connection dropped before the confirmation arrived. The
    message may or may not have been routed; the caller may publish it
    again (consumers must tolerate duplicates).
    """


class DeclareFailed(BusError):
    """
    A topology declaration was refused (for example an exchange re-declared
    with another type, or a binding to a missing exchange).
    """


class AlreadySettled(BusError):
    """
    A message was settled (ack/reject/requeue/deadLetter) twice.
    """


class BusStopped(BusError):
    """
    The bus service was stopped while the operation waited for a connection.
    """
