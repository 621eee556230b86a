# SPDX-License-Identifier: MIT
"""``supervisor`` stand-in: ``ticks_ms``, ``runtime`` (serial console), ``reload``.

Imitates adafruit/circuitpython shared-bindings/supervisor/__init__.c (``ticks_ms``: milliseconds
since power-on, wrapping at 2**29 so it stays a small int; ``reload``) and Runtime.c
(``serial_bytes_available``, ``serial_connected``). The box's serial console is the VM's
stdin/stdout; the clock is the box clock (``_box.ns``).
"""

import select
import sys

import _box

_TICKS_PERIOD = 1 << 29


def ticks_ms():
    return (_box.ns() // 1_000_000) % _TICKS_PERIOD


def reload():
    """Soft reload: code.py runs again (here: the host restarts the VM)."""
    _box.send(b"R"[0], b"reload")
    _box.hold_forever()


class _Runtime:
    _poll = None

    @property
    def serial_connected(self):
        return True

    @property
    def serial_bytes_available(self):
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(sys.stdin, select.POLLIN)
        for _obj, ev in self._poll.poll(0):
            if ev & select.POLLIN:
                return 1
        return 0


runtime = _Runtime()
