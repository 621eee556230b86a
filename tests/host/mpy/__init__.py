"""Run Python code under the MicroPython 1.27 WebAssembly VM from pytest.

The firmware core (``smartmeter/``) must run on CircuitPython/MicroPython, whose dialect is
narrower than CPython's (no keyword arguments to ``int.from_bytes``, no ``typing`` at run time,
no ``dataclasses``...). Executing it under the real MicroPython VM catches those mistakes on
the PC. Use from a test module in ``tests/host`` (pytest puts that directory on ``sys.path``)::

    from mpy import run_micropython

    def test_core_runs_on_micropython():
        rc, out, err = run_micropython(
            "import smartmeter.protocol.axdr\\nprint('ok')\\n",
            files=["smartmeter", ("tests/vectors/real-frames.json", "frames.json")],
        )
        assert rc == 0, err
        assert out.splitlines()[-1] == "ok"

Signature::

    run_micropython(script, files=(), args=(), timeout=60.0, heapsize="2m", check=False)
        -> (returncode: int, stdout: str, stderr: str)

``script``
    Python source text, or a :class:`pathlib.Path` / path string ending in ``.py`` naming a
    host file. It runs as ``__main__`` inside the VM with ``/app`` as working directory and as
    ``sys.path[0]``, ``__file__`` set and ``sys.argv = [script, *args]``.
``files``
    Host files or directories copied into the VM before the script runs. Each item is a path
    (copied to ``/app/<basename>``, directories recursively, ``__pycache__`` skipped) or a
    ``(host_path, dest)`` pair (copied to ``/app/<dest>``). Relative host paths are resolved
    against the repository root, so ``"smartmeter"`` makes
    ``import smartmeter.protocol.crypto`` work.
``returncode``
    0 on success, the code given to ``sys.exit()``, 1 when the script raised (the MicroPython
    traceback is in ``stderr``), 2 when the runner itself could not start.
``timeout``
    seconds; on expiry the Node process is killed and the test fails.
``heapsize``
    initial heap (``"512k"``, ``"2m"``, an int in bytes). The VM grows its heap on demand, so
    this does not model the ESP32-S3's RAM; measure allocations with ``gc.mem_alloc()`` instead.
``check``
    if true, fail the test (with stdout/stderr shown) unless the return code is 0.

Node.js and ``node_modules`` (``make node_modules``) are required. When they are missing the
test is skipped with the reason, except under ``CI=true`` where it fails: CI must run it.

Differences from a board worth knowing: no ``aesio``/hardware modules, floats are doubles,
``time`` has ``ticks_ms`` but no ``monotonic_ns``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["RUNNER", "REPO_ROOT", "node_path", "micropython_available", "run_micropython"]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
RUNNER = HERE / "run.mjs"
PACKAGE = "@micropython/micropython-webassembly-pyscript"


def node_path() -> str | None:
    """Return the ``node`` executable, or None."""
    return shutil.which("node")


def _package_dir() -> Path:
    return REPO_ROOT / "node_modules" / PACKAGE


def micropython_available() -> tuple[bool, str]:
    """Return ``(available, reason_if_not)`` for the MicroPython VM runner."""
    if node_path() is None:
        return False, "node (Node.js) is not installed"
    if not (_package_dir() / "package.json").is_file():
        return False, f"npm package {PACKAGE} is missing: run `make node_modules`"
    return True, ""


def _require_runner() -> str:
    ok, reason = micropython_available()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"MicroPython VM unavailable under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    node = node_path()
    assert node is not None
    return node


def _host_path(p: str | os.PathLike[str]) -> Path:
    path = Path(p)
    return path if path.is_absolute() else REPO_ROOT / path


def run_micropython(
    script: str | os.PathLike[str],
    files=(),
    args=(),
    timeout: float = 60.0,
    heapsize: str | int = "2m",
    check: bool = False,
) -> tuple[int, str, str]:
    """Run ``script`` under MicroPython; return ``(returncode, stdout, stderr)``.

    See the module docstring for the meaning of each argument.
    """
    node = _require_runner()
    cmd = [node, str(RUNNER), "--heapsize", str(heapsize)]
    for item in files:
        if isinstance(item, (tuple, list)):
            src, dest = item
            cmd += ["--file", f"{_host_path(src)}={dest}"]
        else:
            cmd += ["--file", str(_host_path(item))]

    with tempfile.TemporaryDirectory(prefix="mpy-") as tmp:
        is_path = isinstance(script, os.PathLike) or (
            isinstance(script, str) and "\n" not in script and script.endswith(".py")
        )
        if is_path:
            entry = _host_path(script)
            if not entry.is_file():
                raise FileNotFoundError(entry)
        else:
            entry = Path(tmp) / "_script.py"
            entry.write_text(str(script), encoding="utf-8")
        cmd.append(str(entry))
        cmd += [str(a) for a in args]
        try:
            proc = subprocess.run(
                cmd,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
            pytest.fail(f"MicroPython run timed out after {timeout} s; stdout so far:\n{out}")

    if check and proc.returncode != 0:
        pytest.fail(
            f"MicroPython exited with {proc.returncode}\n--- stdout ---\n{proc.stdout}"
            f"\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    return proc.returncode, proc.stdout, proc.stderr
