""".ci/run tests the commit in a fresh clone in an empty temporary folder, and fails with pytest.

Runs the real script against a throw-away repository whose Makefile records where and what
``make`` ran; the system-package part sees stand-ins for dpkg-query/systemctl/node/npm on PATH
(everything "installed"), so nothing is installed or stopped on this machine.
"""

import os
import shutil
import stat
import subprocess

from _support import REPO_ROOT

MAKEFILE = """\
.PHONY: .venv node_modules lint test
.venv node_modules:
\t@echo setup >> $(LOG)
lint:
\t@echo "lint $$(pwd)" >> $(LOG)
\t@ls -A .. >> $(LOG)
\t@test ! -e untracked.txt || echo "UNTRACKED SEEN" >> $(LOG)
test:
\t@echo "test $$(pwd)" >> $(LOG)
\t@echo "vm=$(CIRCUITPYTHON)" >> $(LOG)
\t@exit $(TEST_RC)
"""


def _shim(bindir, name, body):
    path = bindir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run_ci(tmp_path, test_rc, vm=False):
    src = tmp_path / "src"
    if vm:  # the project's CircuitPython VM beside the repository, as on the build machine
        path = tmp_path / "shared" / "circuitpython" / "circuitpython-unix"
        path.parent.mkdir(parents=True)
        _shim(path.parent, path.name, "exit 0")
    (src / ".ci").mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".ci" / "run", src / ".ci" / "run")
    (src / "Makefile").write_text(MAKEFILE)
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "ci"], check=True)
    (src / "untracked.txt").write_text("not committed")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _shim(bindir, "dpkg-query", "echo 'install ok installed'")
    _shim(bindir, "systemctl", "exit 3")
    _shim(bindir, "node", "echo v20")
    _shim(bindir, "npm", "echo 10")
    log = tmp_path / "make.log"
    # `make test CIRCUITPYTHON=...` sets it, in the environment and in MAKEFLAGS for sub-makes
    outer = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CIRCUITPYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    }
    env = dict(
        outer,
        PATH="%s:%s" % (bindir, os.environ["PATH"]),
        LOG=str(log),
        TEST_RC=str(test_rc),
        TMPDIR=str(tmp_path),
    )
    proc = subprocess.run(
        ["bash", str(src / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )
    return proc, log.read_text().splitlines(), src


def test_ci_runs_lint_and_test_in_a_fresh_clone_with_nothing_beside_it(tmp_path):
    proc, lines, src = _run_ci(tmp_path, 0)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lint = [x for x in lines if x.startswith("lint ")]
    test = [x for x in lines if x.startswith("test ")]
    assert len(lint) == 1 and len(test) == 1, lines
    clone = lint[0][5:]
    assert test[0][5:] == clone and clone != str(src)
    assert os.path.basename(clone) == "smartmeter"
    i = lines.index(lint[0])
    beside = lines[i + 1 : lines.index(test[0])]
    assert beside == ["smartmeter"], beside  # the clone is alone in its folder
    assert "UNTRACKED SEEN" not in lines  # only the commit, not the working tree
    assert lines.index(lint[0]) < lines.index(test[0])
    assert not os.path.exists(clone)  # removed afterwards


def test_ci_passes_the_circuitpython_vm_beside_the_repository_only_when_it_exists(tmp_path):
    proc, lines, _ = _run_ci(tmp_path / "without", 0)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vm=" in lines  # no VM: the board tests skip
    proc, lines, _ = _run_ci(tmp_path / "with", 0, vm=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    vm = tmp_path / "with" / "shared" / "circuitpython" / "circuitpython-unix"
    assert "vm=%s" % vm in lines, lines  # resolved from the original repository, not the clone


def test_ci_fails_when_the_tests_fail(tmp_path):
    proc, lines, _ = _run_ci(tmp_path, 1)
    assert proc.returncode != 0
    assert any(x.startswith("test ") for x in lines)
    assert "ci: passed" not in proc.stdout
