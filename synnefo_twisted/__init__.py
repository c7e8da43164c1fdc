"""
synnefo-twisted: the Synnefo cloud control plane on one Twisted reactor per node.
"""

__version__ = "0.1.0"
