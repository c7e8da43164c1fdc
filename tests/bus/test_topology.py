"""
Topology values, Synnefo's event topology and topic matching.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.bus.topology import (
    Binding,
    Exchange,
    Queue,
    Topology,
    eventQueues,
    queuePrefix,
    synnefoTopology,
    topicMatches,
)


def referenceMatch(pattern: list[str], words: list[str]) -> bool:
    """
    AMQP topic matching written the obvious recursive way.
    """
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(referenceMatch(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and referenceMatch(rest, words[1:])


class SynnefoTopologyTests(SynchronousTestCase):
    """
    The declarations follow spec/synnefo-behaviour.md section 2.5.
    """

    def test_exchanges(self) -> None:
        """
        Two durable topic exchanges: ganeti and the dead-letter ganeti-dl.
        """
        self.assertEqual(
            synnefoTopology().exchanges, (Exchange("ganeti", "topic", True), Exchange("ganeti-dl", "topic", True))
        )

    def test_queuesAndBindings(self) -> None:
        """
        Four durable event queues bound to ganeti with the spec's keys, each
        dead-lettering to ganeti-dl, and four -dl twins bound there with the
        same keys.
        """
        t = synnefoTopology("snf-")
        keys = {
            "snf-events-op": "ganeti.snf.event.op",
            "snf-events-network": "ganeti.snf.event.network",
            "snf-events-progress": "ganeti.snf.event.progress",
            "snf-events-cluster": "ganeti.event.cluster",
        }
        expected = {Binding(q, "ganeti", k) for q, k in keys.items()} | {
            Binding(q + "-dl", "ganeti-dl", k) for q, k in keys.items()
        }
        self.assertEqual(set(t.bindings), expected)
        byName = {q.name: q for q in t.queues}
        self.assertEqual(set(byName), set(keys) | {q + "-dl" for q in keys})
        for name in keys:
            self.assertEqual(byName[name].declareArguments(), {"x-dead-letter-exchange": "ganeti-dl"})
            self.assertTrue(byName[name].durable)
            self.assertEqual(byName[name + "-dl"].declareArguments(), {})

    def test_prefix(self) -> None:
        """
        The prefix is the Ganeti name prefix up to its first dash, with or
        without the dash; a prefix that is not one routing-key word is refused.
        """
        self.assertEqual(queuePrefix("snf-"), "snf")
        self.assertEqual(queuePrefix("snf"), "snf")
        names = eventQueues("lab-")
        self.assertEqual(
            (names.op, names.opKey, names.clusterKey), ("lab-events-op", "ganeti.lab.event.op", "ganeti.event.cluster")
        )
        for bad in ("", "-x", "a.b", "#", "a*"):
            self.assertRaises(ValueError, queuePrefix, bad)

    def test_mirrored(self) -> None:
        """
        mirrored=True adds the original's x-ha-policy argument.
        """
        q = synnefoTopology(mirrored=True).queue("snf-events-op")
        assert q is not None
        self.assertEqual(q.declareArguments(), {"x-ha-policy": "all", "x-dead-letter-exchange": "ganeti-dl"})


class TopologyValueTests(SynchronousTestCase):
    """
    Topologies merge; conflicting definitions are refused.
    """

    def test_mergeUnion(self) -> None:
        """
        Merging keeps every element once, in first-seen order.
        """
        a = Topology([Exchange("x")], [Queue("q1")], [Binding("q1", "x", "a")])
        b = Topology(
            [Exchange("x"), Exchange("y")],
            [Queue("q1"), Queue("q2")],
            [Binding("q1", "x", "a"), Binding("q2", "y", "#")],
        )
        m = a + b
        self.assertEqual([e.name for e in m.exchanges], ["x", "y"])
        self.assertEqual([q.name for q in m.queues], ["q1", "q2"])
        self.assertEqual(len(m.bindings), 2)
        self.assertEqual(m + m, m)

    def test_mergeConflict(self) -> None:
        """
        The same name defined differently cannot be merged.
        """
        self.assertRaises(ValueError, Topology([Exchange("x", "topic")]).merge, Topology([Exchange("x", "direct")]))
        self.assertRaises(
            ValueError, Topology(queues=[Queue("q")]).merge, Topology(queues=[Queue("q", arguments={"x-expires": 5})])
        )

    def test_queueArgumentsCompare(self) -> None:
        """
        Queues compare by their arguments' content and are hashable.
        """
        self.assertEqual(Queue("q", arguments={"a": 1}), Queue("q", arguments={"a": 1}))
        self.assertNotEqual(Queue("q", arguments={"a": 1}), Queue("q", arguments={"a": 2}))
        self.assertEqual(len({Queue("q"), Queue("q")}), 1)

    def test_without(self) -> None:
        """
        withoutQueue and withoutExchange drop the element and its bindings.
        """
        t = Topology([Exchange("x")], [Queue("q")], [Binding("q", "x", "#")])
        self.assertEqual(t.withoutQueue("q"), Topology([Exchange("x")]))
        self.assertEqual(t.withoutExchange("x"), Topology(queues=[Queue("q")]))

    def test_exchangeType(self) -> None:
        """
        Only topic, direct and fanout exchanges are accepted.
        """
        self.assertRaises(ValueError, Exchange, "x", "headers")


class TopicMatchTests(SynchronousTestCase):
    """
    Topic matching follows the AMQP 0-9-1 rules.
    """

    def test_examples(self) -> None:
        """
        C{*} is exactly one word, C{#} zero or more words.
        """
        cases = [
            ("ganeti.*.event.op", "ganeti.snf.event.op", True),
            ("ganeti.*.event.op", "ganeti.event.op", False),
            ("ganeti.#", "ganeti", True),
            ("ganeti.#", "ganeti.a.b.c", True),
            ("#", "anything.at.all", True),
            ("#.op", "op", True),
            ("a.#.b", "a.b", True),
            ("a.#.b", "a.x.y.b", True),
            ("a.#.b", "a.x.y.c", False),
            ("*", "a.b", False),
            ("a.b", "a.b.c", False),
        ]
        for pattern, key, expected in cases:
            self.assertEqual(topicMatches(pattern, key), expected, (pattern, key))

    @given(
        st.lists(st.sampled_from(["a", "b", "*", "#"]), min_size=1, max_size=6),
        st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=7),
    )
    def test_againstReference(self, pattern: list[str], words: list[str]) -> None:
        """
        The matcher agrees with a straightforward recursive definition.
        """
        self.assertEqual(topicMatches(".".join(pattern), ".".join(words)), referenceMatch(pattern, words))
