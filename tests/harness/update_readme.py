"""
Regenerate the configuration reference embedded in README.md from the
settings schemas (core and every installed plugin).

Usage: python tests/harness/update_readme.py [--check]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from synnefo_twisted.config import loadConfig
from synnefo_twisted.manage.core import configReference
from synnefo_twisted.pluginloader import discoverPlugins, pluginSections

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"(<!-- config-reference:start[^>]*-->\n)(.*?)(<!-- config-reference:end -->)", re.S)


def expected(text: str) -> str:
    config = loadConfig(None, pluginSections(discoverPlugins()), environ={})
    return BLOCK.sub(lambda m: m.group(1) + configReference(config) + m.group(3), text)


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new = expected(text)
    if "--check" in argv:
        return 0 if new == text else 1
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
