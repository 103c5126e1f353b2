"""Shared test setup: the helper modules next to the tests (helpers.py, reference.py,
dtype_guard.py) import by name under any pytest import mode, including --import-mode=importlib."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
