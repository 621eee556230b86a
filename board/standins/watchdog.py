# SPDX-License-Identifier: MIT
"""``watchdog`` stand-in: ``WatchDogMode``, ``WatchDogTimeout``, the timer behind
``microcontroller.watchdog``.

Imitates adafruit/circuitpython shared-bindings/watchdog/WatchDogTimer.c with
ports/espressif/common-hal/watchdog/WatchDogTimer.c: ``timeout`` in float seconds (negative:
ValueError), ``mode`` None / RAISE / RESET, ``feed()`` does nothing while ``mode`` is None,
``deinit()`` and ``mode = None`` stop it (ESP32 allows that). A board's watchdog runs in
hardware, outside the code it watches: here the HOST keeps the time. The timer reports its
settings and every feed on the box channel; in RESET mode the host ends the VM when no feed
came for ``timeout`` seconds of board time and starts it again with reset reason WATCHDOG.
RAISE mode (an exception raised into the running code) is not imitated: ValueError.
"""

import _box

_vm_time = _box.vm_time  # the VM's ticks (after boot "time" is CircuitPython's)


class WatchDogMode:
    RAISE = "watchdog.WatchDogMode.RAISE"
    RESET = "watchdog.WatchDogMode.RESET"


class WatchDogTimeout(Exception):
    pass


class WatchDogTimer:
    def __init__(self):
        self._timeout = 0.0
        self._mode = None
        self._reported = 0

    def _report(self, what):
        _box.send(b"W"[0], ("%s %s %r" % (what, self._mode, self._timeout)).encode())

    @property
    def timeout(self):
        return self._timeout

    @timeout.setter
    def timeout(self, value):
        value = float(value)
        if value < 0:
            raise ValueError("timeout must be >= 0")
        self._timeout = value
        if self._mode is not None:
            self._report("set")

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, value):
        if value == WatchDogMode.RAISE:
            raise ValueError("the board in a box does not imitate WatchDogMode.RAISE")
        if value not in (None, WatchDogMode.RESET):
            raise ValueError("invalid mode")
        self._mode = value
        self._report("set")

    def feed(self):
        if self._mode is None:
            return
        # at most 20 reports a second of host time: the host only needs to see it is fed
        now = _vm_time.ticks_ms()
        if _vm_time.ticks_diff(now, self._reported) >= 50:
            self._reported = now
            _box.send(0x57, b"feed")

    def deinit(self):
        self._mode = None
        self._report("set")


_timer = WatchDogTimer()
