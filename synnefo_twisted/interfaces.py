# -*- test-case-name: tests.test_interfaces -*-
"""
Every seam of synnefo-twisted, as zope.interface declarations.

Methods are declared without C{self}; each implementation is decorated with
C{@implementer(...)} and checked with C{verifyObject} in the test suite.
Fakes in L{synnefo_twisted.testing} pass the same contract suites as the
production implementations.

Naming: methods are camelCase (Twisted's style, which our services and
protocols must follow anyway); data attributes are snake_case because they
mirror database columns and JSON fields.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface

from synnefo_twisted.health import Health

# --------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------


class IHealthReporter(Interface):
    """
    Something whose health the node reports on C{/healthz}.
    """

    healthName = Attribute("C{str}: the name shown on /healthz (C{database}, C{bus}, a plugin name).")

    def health() -> Health:
        """
        Return the current L{synnefo_twisted.health.Health} (synchronously; no I/O).
        """


# --------------------------------------------------------------------------
# Plugins and the node
# --------------------------------------------------------------------------


class ISynnefoPlugin(Interface):
    """
    A pluggable service of a synnefo node, discovered with
    L{twisted.plugin.getPlugins} in the top-level C{plugins} package.

    Plugin objects hold no state: everything a running service needs is
    created inside L{makeService}.
    """

    name = Attribute("C{str}: unique plugin name (C{api}, C{watcher}, ...), used by --plugin/--no-plugin.")
    roles = Attribute("C{frozenset[str]}: node roles that enable this plugin (besides C{all}).")
    description = Attribute("C{str}: one line for C{twistd synnefo --help}.")
    requires = Attribute(
        "C{frozenset[str]}: shared resources the service needs, from "
        "C{database}, C{bus}, C{ganeti}; the node builds only what enabled plugins require."
    )
    startOrder = Attribute("C{int}: plugins start in ascending order (ties by name) and stop in reverse.")
    section = Attribute("C{str | None}: the configuration section this plugin owns (usually its name), or None.")
    settings = Attribute(
        "C{Sequence[synnefo_twisted.config.Setting]}: the schema of L{section} (keys, types, defaults)."
    )

    def makeService(node: Any) -> object:
        """
        Build this plugin's service.

        @param node: a L{synnefo_twisted.node.NodeContext} giving the reactor,
            the plugin's own configuration section (C{node.settings}) and the
            shared resources it declared in L{requires}.
        @return: an L{twisted.application.service.IService}; its
            C{startService} may return a Deferred, which the node waits for.
        """


# --------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------


class ITransaction(Interface):
    """
    One database transaction, handed to the function given to
    L{IDatabase.runInteraction}.

    SQL uses the C{%s} / C{%(name)s} parameter style on every driver.
    """

    def execute(sql: str, params: Any = ()) -> object:
        """
        Execute one statement inside the transaction.

        @return: Deferred firing with C{list[tuple]}: the result rows (empty
            for statements that return none; use C{RETURNING} to read back).
        """

    def notify(channel: str, payload: str) -> None:
        """
        Queue a notification for L{IDatabase.listen} observers, delivered
        only if and after the transaction commits.
        """


class IDatabase(Interface):
    """
    The relational store. Implementations are also
    L{twisted.application.service.IService} providers: C{startService}
    returns a Deferred that fires once the first connection works (retrying
    with backoff meanwhile); C{stopService} waits for queries in flight,
    then closes.
    """

    dialect = Attribute("C{str}: C{postgresql} or C{sqlite}.")
    writes = Attribute(
        "C{int}: how many calls through this object wrote, or may have (every statement"
        " but a plain C{SELECT}; failed calls too); bumped before the caller sees the outcome,"
        " so a change of it is a change of the data (L{synnefo_twisted.db.changes})."
    )

    def runQuery(sql: str, params: Any = ()) -> object:
        """
        Run one statement in its own transaction. Deferred C{list[tuple]}.
        """

    def runOperation(sql: str, params: Any = ()) -> object:
        """
        Run one statement in its own transaction, discarding rows. Deferred C{None}.
        """

    def runInteraction(interaction: Any, *args: Any, **kwargs: Any) -> object:
        """
        Call C{interaction(transaction, *args, **kwargs)} where
        C{transaction} provides L{ITransaction}; the interaction returns a
        Deferred (or a value). Commit when it succeeds, roll back when it
        fails. Deferred with the interaction's result.

        Row locks: C{SELECT ... FOR UPDATE} is honoured by PostgreSQL; on
        SQLite every interaction is serialised, so the clause is dropped.
        """

    def listen(channel: str, callback: Any) -> object:
        """
        Call C{callback(payload: str)} for each notification on C{channel}.
        Re-established after reconnection. Deferred C{None} once listening.
        """

    def unlisten(channel: str, callback: Any) -> object:
        """
        Stop calling C{callback} for C{channel}. Deferred C{None}.
        """

    def health() -> Health:
        """
        L{synnefo_twisted.health.Health} of the connection(s).
        """


# --------------------------------------------------------------------------
# Message bus
# --------------------------------------------------------------------------


class IIncomingMessage(Interface):
    """
    A message delivered to a consumer. Exactly one of L{ack}, L{reject},
    L{requeue} or L{deadLetter} settles it; later calls are errors.
    """

    body = Attribute("C{bytes}")
    exchange = Attribute("C{str}: the exchange it was published to.")
    routingKey = Attribute("C{str}")
    headers = Attribute("C{Mapping[str, object]}")
    redelivered = Attribute("C{bool}: delivered before and not acknowledged.")
    settled = Attribute("C{bool}: ack/reject/requeue/deadLetter already called.")

    def ack() -> None:
        """
        Acknowledge: the broker forgets the message.
        """

    def reject() -> None:
        """
        Reject without requeue: the broker dead-letters it through the
        queue's dead-letter exchange (or drops it when the queue has none).
        """

    def requeue() -> None:
        """
        Give the message back to the queue for redelivery.
        """

    def deadLetter(reason: str) -> object:
        """
        Publish a copy to the queue's dead-letter exchange with the headers
        C{x-snf-reason}, C{x-snf-origin-exchange} and
        C{x-snf-origin-routing-key}, confirmed, and then ack the original.
        Deferred C{None}.
        """


class IConsumer(Interface):
    """
    A running subscription made by L{IMessageBus.consume}.
    """

    queue = Attribute("C{str}")

    def stop() -> object:
        """
        Cancel the subscription; unsettled messages go back to the queue.
        Deferred C{None}.
        """


class IMessageBus(Interface):
    """
    Topic-routed, persistent messaging with publisher confirms.

    Implementations are also L{twisted.application.service.IService}
    providers: C{startService} returns a Deferred that fires once connected
    (reconnecting with backoff meanwhile and forever after).
    """

    def declare(topology: Any) -> object:
        """
        Declare a L{synnefo_twisted.bus.topology.Topology} (exchanges,
        queues, bindings) idempotently; it is declared again after every
        reconnection. Deferred C{None}.
        """

    def publish(
        exchange: str,
        routingKey: str,
        body: bytes,
        headers: Any = None,
        persistent: bool = True,
    ) -> object:
        """
        Publish C{body}. The Deferred fires only when the broker has
        confirmed the message, and fails (L{synnefo_twisted.bus.errors.PublishFailed})
        when it is nacked or the connection drops before confirmation.
        """

    def consume(queue: str, handler: Any, prefetch: int = 100) -> object:
        """
        Call C{handler(message)} with an L{IIncomingMessage} for each
        delivery, at most C{prefetch} unsettled at a time. The handler
        settles the message (possibly later, through a returned Deferred).
        If the handler raises or its Deferred fails and the message is not
        settled, it is dead-lettered with the failure as reason.

        The subscription is re-established after reconnection; messages
        unsettled when a connection drops are redelivered.

        Deferred L{IConsumer}.
        """

    def health() -> Health:
        """
        L{synnefo_twisted.health.Health} of the connection.
        """


# --------------------------------------------------------------------------
# Ganeti
# --------------------------------------------------------------------------


class IBackendRegistry(Interface):
    """
    The Ganeti clusters this node talks to (rows of the C{backends} table),
    each with an L{IGanetiClient} once the Ganeti backend provides one.
    """

    prefix = Attribute("C{str}: the name prefix for instances (C{snf-}).")

    def backends() -> object:
        """
        Deferred C{list[synnefo_twisted.db.models.Backend]}, in id order.
        """

    def clientFor(backend: Any) -> object:
        """
        The L{IGanetiClient} for a backend model.
        """


class IGanetiClient(Interface):
    """
    The Ganeti RAPI (version 2) calls the control plane uses.

    Every method returns a Deferred. Failures are
    L{synnefo_twisted.ganeti.errors.GanetiError} subclasses: C{RapiError}
    (with C{code}, C{message}, C{explain}; C{RapiUnauthorized} 401,
    C{RapiForbidden} 403, C{RapiNotFound} 404, C{RapiBadRequest} 400,
    C{RapiServerError} 5xx), C{RapiConnectionError}, C{RapiTimeout},
    C{JobFailed} (Ganeti's error class, message and code), C{JobCanceled},
    C{JobNotFound}. Reads are retried on transport errors and 502/504; job
    submissions are never retried. Methods that submit a job fire with the
    job id (C{int}).
    """

    def getVersion() -> object:
        """
        Deferred C{int}: C{GET /version} (2 for every Ganeti >= 2.0).
        """

    def getInfo() -> object:
        """
        Deferred C{dict}: cluster information, C{GET /2/info}.
        """

    def getNodes(bulk: bool = True) -> object:
        """
        Deferred C{list[dict]}: C{GET /2/nodes} (full records when C{bulk},
        else C{{"id", "uri"}} items).
        """

    def getNode(name: str) -> object:
        """
        Deferred C{dict}: C{GET /2/nodes/<name>}.
        """

    def getGroups(bulk: bool = True) -> object:
        """
        Deferred C{list[dict]}: C{GET /2/groups}.
        """

    def getGroup(name: str) -> object:
        """
        Deferred C{dict}: C{GET /2/groups/<name>}.
        """

    def getInstances(bulk: bool = True) -> object:
        """
        Deferred C{list[dict]}: C{GET /2/instances} (bulk records carry
        C{name}, C{admin_state}, C{oper_state}, C{status}, C{nic.*},
        C{disk.*}, C{beparams}, C{hvparams}, C{tags}, ...).
        """

    def getInstance(name: str) -> object:
        """
        Deferred C{dict}: C{GET /2/instances/<name>}.
        """

    def getInstanceInfo(name: str, static: bool = False) -> object:
        """
        Submit C{OP_INSTANCE_QUERY_DATA}: Deferred job id.
        """

    def createInstance(name: str, diskTemplate: str, disks: Any, nics: Any, **kwargs: Any) -> object:
        """
        Submit C{OP_INSTANCE_CREATE} (C{POST /2/instances}, request version
        1, C{mode} defaulting to C{create}). C{kwargs} are the other fields
        of spec §2.2 (C{os}, C{beparams}, C{hvparams}, C{osparams}, C{tags},
        C{depends}, C{ip_check}, C{name_check}, C{opportunistic_locking},
        C{wait_for_sync}, C{pnode}, C{hypervisor}, ...); C{dry_run} goes to
        the query string. Deferred job id.
        """

    def deleteInstance(name: str, shutdownTimeout: int | None = None, dryRun: bool = False) -> object:
        """
        Submit C{OP_INSTANCE_REMOVE}. Deferred job id.
        """

    def startupInstance(name: str, dryRun: bool = False) -> object:
        """
        Submit C{OP_INSTANCE_STARTUP}. Deferred job id.
        """

    def shutdownInstance(name: str, timeout: int | None = None, dryRun: bool = False) -> object:
        """
        Submit C{OP_INSTANCE_SHUTDOWN}; C{timeout} seconds before a hard
        stop. Deferred job id.
        """

    def rebootInstance(
        name: str, rebootType: str = "hard", shutdownTimeout: int | None = None, dryRun: bool = False
    ) -> object:
        """
        Submit C{OP_INSTANCE_REBOOT} (C{soft}, C{hard} or C{full}).
        Deferred job id.
        """

    def modifyInstance(name: str, **kwargs: Any) -> object:
        """
        Submit C{OP_INSTANCE_SET_PARAMS} with C{kwargs} as body (C{beparams},
        C{hvparams}, C{nics} as C{[["add", -1, {...}]]},
        C{[["remove", "snf-nic-1", {}]]} or C{[["modify", ident, {...}]]},
        C{disks}, C{depends}, C{hotplug_if_possible}, ...). Deferred job id.
        """

    def getInstanceConsole(name: str) -> object:
        """
        Deferred C{dict}: the console description (C{kind} C{vnc} with
        C{host}, C{port}; or C{msg} with C{message}). A stopped instance
        fails with C{RapiServerError} 503.
        """

    def getInstanceTags(name: str) -> object:
        """
        Deferred C{list[str]}.
        """

    def addInstanceTags(name: str, tags: list[str], dryRun: bool = False) -> object:
        """
        Submit C{OP_TAGS_SET} on an instance. Deferred job id.
        """

    def deleteInstanceTags(name: str, tags: list[str], dryRun: bool = False) -> object:
        """
        Submit C{OP_TAGS_DEL} on an instance. Deferred job id.
        """

    def getClusterTags() -> object:
        """
        Deferred C{list[str]}.
        """

    def addClusterTags(tags: list[str], dryRun: bool = False) -> object:
        """
        Submit C{OP_TAGS_SET} on the cluster (dry-run: the eventd
        heartbeat probe). Deferred job id.
        """

    def deleteClusterTags(tags: list[str], dryRun: bool = False) -> object:
        """
        Submit C{OP_TAGS_DEL} on the cluster. Deferred job id.
        """

    def getJobs(bulk: bool = False) -> object:
        """
        Deferred C{list[dict]}: C{GET /2/jobs}.
        """

    def getJob(jobId: int) -> object:
        """
        Deferred C{dict}: C{GET /2/jobs/<id>} (C{id}, C{status}, C{ops},
        C{opstatus}, C{opresult}, C{oplog}, C{summary}, C{received_ts},
        C{start_ts}, C{end_ts}). Fails with C{JobNotFound}.
        """

    def waitForJobChange(
        jobId: int, fields: list[str], previousJobInfo: Any = None, previousLogSerial: int | None = None
    ) -> object:
        """
        One long poll, C{GET /2/jobs/<id>/wait}: Deferred C{dict}
        C{{"job_info", "log_entries"}}, or None when nothing changed.
        """

    def waitForJob(jobId: int, timeout: float | None = None) -> object:
        """
        Poll the job until it is final. Deferred job C{dict} on success;
        fails with C{JobFailed}, C{JobCanceled} or C{RapiTimeout}.
        """

    def cancelJob(jobId: int) -> object:
        """
        Deferred C{[bool, str]}: C{DELETE /2/jobs/<id>} (Ganeti's answer:
        whether it was cancelled, and a message).
        """

    def getNetworks(bulk: bool = True) -> object:
        """
        Deferred C{list[dict]}: C{GET /2/networks}.
        """

    def getNetwork(name: str) -> object:
        """
        Deferred C{dict}: C{GET /2/networks/<name>}.
        """

    def createNetwork(name: str, network: str, **kwargs: Any) -> object:
        """
        Submit C{OP_NETWORK_ADD} (C{kwargs}: C{gateway}, C{network6},
        C{gateway6}, C{mac_prefix}, C{add_reserved_ips}, C{conflicts_check},
        C{tags}, C{depends}, C{dry_run}). Deferred job id.
        """

    def connectNetwork(name: str, groupName: str, mode: str, link: str, **kwargs: Any) -> object:
        """
        Submit C{OP_NETWORK_CONNECT} (C{kwargs}: C{vlan},
        C{conflicts_check}, C{depends}, C{dry_run}). Deferred job id.
        """

    def disconnectNetwork(name: str, groupName: str, **kwargs: Any) -> object:
        """
        Submit C{OP_NETWORK_DISCONNECT} (C{kwargs}: C{depends},
        C{dry_run}). Deferred job id.
        """

    def deleteNetwork(name: str, **kwargs: Any) -> object:
        """
        Submit C{OP_NETWORK_REMOVE} (C{kwargs}: C{depends}, C{dry_run}).
        Deferred job id.
        """


# --------------------------------------------------------------------------
# VNC console
# --------------------------------------------------------------------------


class IConsoleBroker(Interface):
    """
    Asks the VNC proxy for a one-time console forwarding.
    """

    def requestForwarding(
        destinationAddress: str,
        destinationPort: int,
        password: str,
        consoleType: str,
    ) -> object:
        """
        Deferred C{dict} C{{"host", "port", "password", "type"}} for the viewer.
        """
