"""What the firmware got wrong under genuine CircuitPython (found with ``make board``), each
reproduced on the host so it cannot come back.

- A class attribute ``_NAME = const(...)``: MicroPython's compiler treats an underscore name
  assigned ``const()`` as a compile-time constant and stores nothing, so ``self._NAME`` raises
  AttributeError on the board (``LineMemory._MARK``: "line memory error: 'LineMemory' object has
  no attribute '_MARK'" at every boot, the found line setting was never remembered).
- ``httpio.DeadlineSocket.recv`` on a socketpool socket, which has no ``recv``: every InfluxDB
  write failed after it had gone out (details at the test below).
"""

from __future__ import annotations

import ast

from _support import REPO_ROOT

DEVICE_CODE = sorted(
    p
    for root in ("smartmeter", "drivers")
    for p in (REPO_ROOT / root).rglob("*.py")
    if "__pycache__" not in p.parts
) + [REPO_ROOT / "code.py", REPO_ROOT / "notice.py"]


def _is_const_call(node):
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "const"
    )


def class_level_private_consts(path):
    """``(class, name, line)`` for each ``_NAME = const(...)`` directly in a class body."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and _is_const_call(stmt.value):
                for target in stmt.targets:
                    if isinstance(target, ast.Name) and target.id.startswith("_"):
                        found.append((cls.name, target.id, stmt.lineno))
    return found


def test_the_checker_finds_a_class_level_private_const(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("class A:\n    _X = const(1)\n    Y = const(2)\n")
    assert class_level_private_consts(sample) == [("A", "_X", 2)]


def test_no_private_const_in_a_class_body():
    bad = {
        str(p.relative_to(REPO_ROOT)): class_level_private_consts(p)
        for p in DEVICE_CODE
        if class_level_private_consts(p)
    }
    assert bad == {}, "MicroPython drops these from the class (AttributeError on the board)"


# - ``smartmeter.httpio.DeadlineSocket`` always had a ``recv`` that called the wrapped socket's
#   ``recv``. CircuitPython's socketpool has none (only ``recv_into``), and adafruit_requests
#   asks ``hasattr(socket, "recv")`` to check a fresh connection: every InfluxDB write on the
#   board ended in AttributeError "'Socket' object has no attribute 'recv'" after the request had
#   gone out (influxd got the points, the board counted a failure and sent them again forever).


class _SocketpoolSocket:
    """The methods CircuitPython's socketpool.Socket has for reading: recv_into only."""

    def settimeout(self, t):
        self.t = t

    def recv_into(self, buf, nbytes=0):
        buf[0:1] = b"H"
        return 1


def test_deadline_socket_offers_recv_only_when_the_socket_has_it():
    from smartmeter import httpio

    deadline = httpio.Deadline(lambda: 0, None)
    deadline.arm(1000)
    board = httpio.DeadlineSocket(_SocketpoolSocket(), deadline)
    assert not hasattr(board, "recv")  # adafruit_requests then reads with recv_into
    buf = bytearray(1)
    assert board.recv_into(buf) == 1 and buf == b"H"

    class WithRecv(_SocketpoolSocket):
        def recv(self, n):
            return b"H"

    pc = httpio.DeadlineSocket(WithRecv(), deadline)
    assert pc.recv(1) == b"H"
