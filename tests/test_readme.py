"""
The README keeps its promises: two set-up commands and a configuration
reference that matches the code.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.harness.update_readme import README, expected


class ReadmeTests(SynchronousTestCase):
    def test_configurationReferenceUpToDate(self) -> None:
        """
        The embedded configuration reference equals what the schemas generate
        (run tests/harness/update_readme.py after changing a setting).
        """
        text = README.read_text(encoding="utf-8")
        self.assertEqual(text, expected(text))

    def test_twoSetupCommands(self) -> None:
        """
        The set-up section has exactly two commands: make run and make test.
        """
        text = README.read_text(encoding="utf-8")
        section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
        block = re.search(r"```sh\n(.*?)```", section, re.S)
        assert block is not None
        commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]
        self.assertEqual(commands, ["make run", "make test"])
        self.assertTrue(Path(README).with_name("Makefile").exists())
