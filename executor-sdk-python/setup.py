"""Builds the package with its stubs generated from proto/ (see generate_stubs.py)."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithStubs(build_py):
    def run(self):
        spec = importlib.util.spec_from_file_location(
            "generate_stubs", Path(__file__).resolve().parent / "generate_stubs.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.generate()
        # The generated package did not exist when setuptools listed the packages.
        self.packages = sorted(set(self.packages or []) | {"jobstream", "jobstream.v1"})
        super().run()


setup(cmdclass={"build_py": BuildWithStubs})
