# -*- test-case-name: tests.vncproxy.test_splice -*-
"""
A zero-copy relay between two TCP sockets with Linux C{splice(2)}: bytes go
from one socket into a pipe and from the pipe into the other socket without
being copied into Python. Used for plain C{vnc} forwardings once the viewer
has authenticated (the handshake itself runs in the Twisted protocols).

Each socket is one reactor descriptor (C{_End}): readable means "move from
this socket into the pipe towards the peer", writable means "drain the pipe
from the peer into this socket". Flow control: a direction whose pipe cannot
be drained stops reading its source until the destination is writable again,
so at most one pipe (L{PIPE_SIZE}) per direction is in flight. An end of
stream is passed on as C{shutdown(SHUT_WR)} once the pipe is empty; the relay
ends when both directions have, or at the first error. Then the sockets are
handed back to their Twisted transports, which close them (so the protocols'
C{connectionLost} runs as usual).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorFDSet, IReadWriteDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = 1031
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


def available(reactor: Any, *transports: Any) -> bool:
    """
    Whether the sockets of C{transports} can be relayed with splice here.
    """
    if not hasattr(os, "splice") or not IReactorFDSet.providedBy(reactor):
        return False
    sockets = [getattr(t, "socket", None) for t in transports]
    # a blocking socket would block the reactor inside splice(2)
    return all(isinstance(s, socket.socket) and not s.getblocking() for s in sockets)


def writeBuffered(transport: Any) -> bool:
    """
    Whether a Twisted TCP transport still holds bytes it has not sent.
    """
    pending = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return bool(pending > 0 or getattr(transport, "_tempDataLen", 0))


class _Pipe:
    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self.w, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # keep the default size (pipe-max-size may be lower)
        self.pending = 0

    def close(self) -> None:
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


@implementer(IReadWriteDescriptor)
class _End:
    def __init__(self, relay: SpliceRelay, transport: Any, name: str) -> None:
        self.relay = relay
        self.transport = transport
        self.name = name
        self.fd = transport.socket.fileno()
        self.peer: _End
        self.toPeer = _Pipe()  # bytes read from this socket, on their way to the peer
        self.eof = False  # this socket has ended its stream (read returned 0)
        self.shutDown = False  # we have shut down writing on this socket
        self.sent = 0  # bytes written into this socket

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return f"splice-{self.name}"

    def connectionLost(self, reason: Failure) -> None:
        self.relay._end(f"{self.name} descriptor lost: {reason.getErrorMessage()}")

    def doRead(self) -> None:
        try:
            n = os.splice(self.fd, self.toPeer.w, PIPE_SIZE, flags=_FLAGS)
        except BlockingIOError:
            return None
        except OSError as e:
            self.relay._end(f"{self.name}: {os.strerror(e.errno or 0)}")
            return None
        if n == 0:
            self.eof = True
            self.relay.reactor.removeReader(self)
        else:
            self.toPeer.pending += n
        self.peer._drain()
        return None

    def doWrite(self) -> None:
        self._drain()
        return None

    def _drain(self) -> None:
        """
        Move what the peer read (in the peer's pipe) into this socket.
        """
        pipe = self.peer.toPeer
        reactor = self.relay.reactor
        while pipe.pending:
            try:
                n = os.splice(pipe.r, self.fd, pipe.pending, flags=_FLAGS)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET):
                    self.relay._end(f"{self.name} closed")
                else:
                    self.relay._end(f"{self.name}: {os.strerror(e.errno or 0)}")
                return
            pipe.pending -= n
            self.sent += n
        if self.relay.ended:
            return
        if pipe.pending:
            # destination full: wait for it, and stop reading the source meanwhile
            reactor.addWriter(self)
            reactor.removeReader(self.peer)
            return
        reactor.removeWriter(self)
        if self.peer.eof:
            if not self.shutDown:
                self.shutDown = True
                try:
                    self.transport.socket.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            if self.eof:
                self.relay._end("both sides finished")
        elif not self.relay.ended:
            reactor.addReader(self.peer)


class SpliceRelay:
    """
    Relay between the sockets of two Twisted TCP transports whose write
    buffers are empty. C{onEnd(relay, why)} is called once, after the
    transports have been told to close.
    """

    def __init__(self, reactor: Any, a: Any, b: Any, onEnd: Callable[[SpliceRelay, str], None]) -> None:
        self.reactor = reactor
        self.ended = False
        self._onEnd = onEnd
        self.a = _End(self, a, "viewer")
        self.b = _End(self, b, "server")
        self.a.peer, self.b.peer = self.b, self.a
        for end in (self.a, self.b):
            end.transport.unregisterProducer()
            end.transport.stopReading()
            end.transport.stopWriting()
        for end in (self.a, self.b):
            reactor.addReader(end)

    @property
    def toViewer(self) -> int:
        return self.a.sent

    @property
    def toServer(self) -> int:
        return self.b.sent

    def stop(self, why: str) -> None:
        self._end(why)

    def _end(self, why: str) -> None:
        if self.ended:
            return
        self.ended = True
        for end in (self.a, self.b):
            self.reactor.removeReader(end)
            self.reactor.removeWriter(end)
        for end in (self.a, self.b):
            end.toPeer.close()
        self._onEnd(self, why)
        for end in (self.a, self.b):
            # the transport closes the socket and reports connectionLost to its protocol
            end.transport.loseConnection()
