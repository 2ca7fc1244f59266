"""The compiled build of the parser and tracker is used only when it was made from exactly the
sources in the tree, by this Python, and never when ALPHA_COMPILED=0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

from django.conf import settings

from collector import speedups

PACKAGE = os.path.dirname(os.path.abspath(speedups.__file__))


class SpeedupsTests(unittest.TestCase):
    def setUp(self):
        # As if the switch were on, whatever this run has (the PostgreSQL run turns it off).
        switch = mock.patch.dict(os.environ, {"ALPHA_COMPILED": "1"})
        switch.start()
        self.addCleanup(switch.stop)
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder)
        self.sources = os.path.join(self.folder, "sources")
        os.mkdir(self.sources)
        for name in speedups.MODULES:
            shutil.copy(os.path.join(PACKAGE, f"{name}.py"), self.sources)

    def manifest(self, **changes) -> None:
        manifest = {"python": sys.implementation.cache_tag, "digests": speedups.digests(self.sources)}
        manifest.update(changes)
        with open(os.path.join(self.folder, speedups.MANIFEST), "w") as f:
            json.dump(manifest, f)

    def test_it_uses_a_build_of_these_very_sources(self):
        self.assertFalse(speedups.usable(self.sources, self.folder))  # no build
        self.manifest()
        self.assertTrue(speedups.usable(self.sources, self.folder))
        path = [self.sources]
        self.assertTrue(speedups.enable(path, self.folder))
        self.assertEqual(path, [os.path.join(self.folder, "collector"), self.sources])
        self.assertIn(self.folder, sys.path)
        sys.path.remove(self.folder)

    def test_it_ignores_a_build_of_an_edited_source(self):
        self.manifest()
        with open(os.path.join(self.sources, "parsing.py"), "a") as f:
            f.write("# edited after the build\n")
        self.assertFalse(speedups.usable(self.sources, self.folder))
        path = [self.sources]
        self.assertFalse(speedups.enable(path, self.folder))
        self.assertEqual(path, [self.sources])

    def test_it_ignores_a_build_for_another_python_or_a_broken_manifest(self):
        self.manifest(python="cpython-312")
        self.assertFalse(speedups.usable(self.sources, self.folder))
        with open(os.path.join(self.folder, speedups.MANIFEST), "w") as f:
            f.write("{not json")
        self.assertFalse(speedups.usable(self.sources, self.folder))

    def test_it_ignores_any_build_with_alpha_compiled_0(self):
        self.manifest()
        with mock.patch.dict(os.environ, {"ALPHA_COMPILED": "0"}):
            self.assertFalse(speedups.usable(self.sources, self.folder))
        with mock.patch.dict(os.environ, {"ALPHA_COMPILED": "1"}):
            self.assertTrue(speedups.usable(self.sources, self.folder))


class BuildInUseTests(unittest.TestCase):
    @unittest.skipUnless(os.environ.get("CI") == "true", "CI builds it (scripts/compile.sh)")
    def test_ci_runs_the_build_unless_told_not_to(self):
        # .ci/run compiles before the tests: the SQLite run must test the build, and the
        # PostgreSQL run (ALPHA_COMPILED=0) the Python, or one of them tests nothing new.
        out = subprocess.run(
            [sys.executable, "-c", "import collector.speedups as s; print(s.in_use())"],
            cwd=settings.BASE_DIR, capture_output=True, text=True, check=True,
        )  # fmt: skip
        self.assertEqual(out.stdout.strip(), str(os.environ.get("ALPHA_COMPILED", "1") != "0"))
