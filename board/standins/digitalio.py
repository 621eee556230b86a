# SPDX-License-Identifier: MIT
"""``digitalio`` stand-in: ``DigitalInOut``, ``Direction``, ``Pull``, ``DriveMode``.

Imitates adafruit/circuitpython shared-bindings/digitalio/DigitalInOut.c: a new pin is an input;
``value`` of an output reads back what was written; an input with no pull reads False here (a
floating pin has no defined level), pull UP reads True; writing ``value`` on an input raises
AttributeError ("Cannot set value when direction is input."); use after ``deinit()``: ValueError.
"""

import microcontroller


class Direction:
    INPUT = "digitalio.Direction.INPUT"
    OUTPUT = "digitalio.Direction.OUTPUT"


class Pull:
    UP = "digitalio.Pull.UP"
    DOWN = "digitalio.Pull.DOWN"


class DriveMode:
    PUSH_PULL = "digitalio.DriveMode.PUSH_PULL"
    OPEN_DRAIN = "digitalio.DriveMode.OPEN_DRAIN"


class DigitalInOut:
    def __init__(self, pin):
        self._pin = microcontroller._claim(pin)
        self._direction = Direction.INPUT
        self._pull = None
        self._value = False
        self.drive_mode = DriveMode.PUSH_PULL

    def _check(self):
        if self._pin is None:
            raise ValueError("Object has been deinitialized and can no longer be used.")

    def deinit(self):
        microcontroller._release(self._pin)
        self._pin = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.deinit()

    def switch_to_output(self, value=False, drive_mode=DriveMode.PUSH_PULL):
        self._check()
        self._direction = Direction.OUTPUT
        self._pull = None
        self._value = bool(value)
        self.drive_mode = drive_mode

    def switch_to_input(self, pull=None):
        self._check()
        self._direction = Direction.INPUT
        self._pull = pull

    @property
    def direction(self):
        self._check()
        return self._direction

    @direction.setter
    def direction(self, value):
        if value == Direction.OUTPUT:
            self.switch_to_output()
        else:
            self.switch_to_input()

    @property
    def value(self):
        self._check()
        if self._direction == Direction.OUTPUT:
            return self._value
        return self._pull == Pull.UP

    @value.setter
    def value(self, v):
        self._check()
        if self._direction == Direction.INPUT:
            raise AttributeError("Cannot set value when direction is input.")
        self._value = bool(v)

    @property
    def pull(self):
        self._check()
        if self._direction == Direction.OUTPUT:
            raise AttributeError("Pull not used when direction is output.")
        return self._pull

    @pull.setter
    def pull(self, value):
        self._check()
        if self._direction == Direction.OUTPUT:
            raise AttributeError("Pull not used when direction is output.")
        self._pull = value
