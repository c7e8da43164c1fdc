"""
The synnefo plugin namespace: one small L{ISynnefoPlugin} provider per
service, found with L{twisted.plugin.getPlugins}. Third-party plugins are
picked up from any C{plugins/} directory (without C{__init__.py}) on
C{sys.path}.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
