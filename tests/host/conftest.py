"""pytest configuration for the host tests.

Puts the repository root on ``sys.path`` (so ``import smartmeter``, ``import sim`` work without
installing anything) and makes ``_support`` (skip-or-fail helpers) and ``mpy`` (the MicroPython
VM runner) importable from every test module. Hardware modules are deliberately not mocked here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import _support  # noqa: E402
import mpy  # noqa: E402


@pytest.fixture
def require():
    """Fixture form of :func:`_support.require` (skip locally, fail under ``CI=true``)."""
    return _support.require


@pytest.fixture
def run_micropython():
    """Fixture form of :func:`mpy.run_micropython`."""
    return mpy.run_micropython
