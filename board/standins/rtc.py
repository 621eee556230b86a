# SPDX-License-Identifier: MIT
"""``rtc`` stand-in: ``RTC()`` singleton with ``datetime`` and ``calibration``.

Imitates adafruit/circuitpython shared-bindings/rtc/RTC.c and ports/espressif/common-hal/rtc:
setting ``datetime`` (a ``time.struct_time``) moves ``time.time()`` and ``time.localtime()``;
``calibration`` is not implemented on ESP32 (NotImplementedError).
"""

import _boxtime


class RTC:
    _instance = None

    def __new__(cls):
        if RTC._instance is None:
            RTC._instance = object.__new__(cls)
        return RTC._instance

    @property
    def datetime(self):
        return _boxtime.localtime()

    @datetime.setter
    def datetime(self, value):
        _boxtime._set_rtc(_boxtime.mktime(value))

    @property
    def calibration(self):
        raise NotImplementedError("RTC calibration is not supported on this board")

    @calibration.setter
    def calibration(self, value):
        raise NotImplementedError("RTC calibration is not supported on this board")


def set_time_source(rtc):
    """CircuitPython lets time.* read another RTC object; the box keeps its own clock."""
