# SPDX-License-Identifier: MIT
"""CircuitPython's ``time`` module on the box clock (boot puts it into ``sys.modules["time"]``).

Imitates adafruit/circuitpython shared-bindings/time/__init__.c: ``monotonic`` (float seconds
from a millisecond tick counter, so float32 loses precision as uptime grows, as on a board),
``monotonic_ns``, ``sleep``, ``struct_time``, ``time``/``localtime``/``mktime`` from the RTC
(UTC, epoch 1970; before the RTC is set it counts from 2000-01-01 like a board after power-on).
No ``ticks_ms`` here: CircuitPython has it in ``supervisor``.
"""

import time as _vm  # the VM's built-in (boot imports this module before replacing "time")
from collections import namedtuple

import _box

_RTC_AT_POWER_ON = 946684800  # 2000-01-01T00:00:00Z, CircuitPython's RTC before it is set

_StructTime = namedtuple(
    "struct_time",
    (
        "tm_year",
        "tm_mon",
        "tm_mday",
        "tm_hour",
        "tm_min",
        "tm_sec",
        "tm_wday",
        "tm_yday",
        "tm_isdst",
    ),
)


def struct_time(time_tuple):
    """``time.struct_time((2019, 5, 29, 15, 14, 15, 0, -1, -1))``: built from ONE 9-sequence."""
    if len(time_tuple) != 9:
        raise TypeError("time.struct_time() takes a 9-sequence")
    return _StructTime(*time_tuple)


# RTC: epoch seconds = _rtc_base + board seconds since power-on (rtc.RTC().datetime moves it)
_rtc_base = _RTC_AT_POWER_ON


def _set_rtc(epoch):
    global _rtc_base
    _rtc_base = int(epoch) - _box.ns() // 1_000_000_000


def monotonic():
    return (_box.ns() // 1_000_000) / 1000


def monotonic_ns():
    return _box.ns()


def sleep(seconds):
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    _box.sleep_board(seconds)


def time():
    return _rtc_base + _box.ns() // 1_000_000_000


def localtime(secs=None):
    if secs is None:
        secs = time()
    t = _vm.gmtime(int(secs))
    return struct_time((t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], -1))


def mktime(t):
    if len(t) != 9:
        raise TypeError("function takes 9 positional arguments")
    return _vm.mktime(tuple(t[:8]) + (0,))
