"""Unit tests run against the sources, with stubs generated from proto/ into a temporary
directory (never into src/)."""

import importlib.util
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
_stubs = tempfile.mkdtemp(prefix="jobstream-python-stubs-")
_spec = importlib.util.spec_from_file_location("generate_stubs", HERE.parent / "generate_stubs.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
_module.generate(Path(_stubs))
sys.path.insert(0, _stubs)
sys.path.insert(1, str(HERE.parent / "src"))
