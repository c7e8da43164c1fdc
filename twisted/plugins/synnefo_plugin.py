"""
The twistd dropin: C{twistd synnefo}. Kept thin and lazy; the work is in
L{synnefo_twisted.tap}.
"""

from twisted.application.service import ServiceMaker

synnefo = ServiceMaker(
    "synnefo",
    "synnefo_twisted.tap",
    "A Synnefo node: pluggable control-plane services selected by the node's roles.",
    "synnefo",
)
