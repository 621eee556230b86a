"""Shared helpers for host tests (importable as ``_support`` from any test in tests/host).

``require(condition, reason)``
    Skip the calling test when an optional system tool is missing (Chromium, Mosquitto, Node
    ...), but fail it when running under CI (``CI=true``), where .ci/run installs everything
    and a silent skip would hide a broken setup::

        from _support import require, which

        def test_dashboard_screenshot():
            chromium = which("chromium", "chromium-browser")
            require(chromium is not None, "chromium is not installed")
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    """Return True when running under CI (environment variable ``CI=true``)."""
    return os.environ.get("CI") == "true"


def require(condition: object, reason: str) -> None:
    """Skip (locally) or fail (under CI) the current test unless ``condition`` is true."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def which(*names: str) -> str | None:
    """Return the path of the first of ``names`` found on PATH (or in /usr/sbin), else None."""
    extra = os.pathsep.join(("/usr/sbin", "/sbin", "/usr/local/sbin"))
    search = os.environ.get("PATH", "") + os.pathsep + extra
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


class Actions:
    """The app's actions (restart, setup mode) as a recorder for UI and web tests."""

    def __init__(self):
        self.restarts = 0
        self.setups = 0

    def restart(self):
        self.restarts += 1

    def setup_mode(self):
        self.setups += 1
