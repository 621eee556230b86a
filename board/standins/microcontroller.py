# SPDX-License-Identifier: MIT
"""``microcontroller`` stand-in for an ESP32-S3: ``Pin``, ``pin``, ``cpu``, ``nvm``, ``reset``,
``watchdog``, ``ResetReason``, ``RunMode``, ``on_next_reset``.

Imitates adafruit/circuitpython shared-bindings/microcontroller/ (__init__.c, Pin.c,
Processor.c, ResetReason.c) with ports/espressif: GPIO0..GPIO48 less the ones the S3 lacks
(22-25); a pin used by one peripheral raises ValueError("... in use") for the next until it is
released (shared-bindings/microcontroller/Pin.c ``validate_pin_free``/``raise_ValueError_in_use``).
``nvm`` imitates shared-bindings/nvm/ByteArray.c over a file of
CIRCUITPY_INTERNAL_NVM_SIZE = 8192 bytes (ports/espressif/mpconfigport.h) that survives
restarts (the ESP32 rewrites its whole NVS blob per assignment: batch writes on a board).
``reset()`` asks the host to restart the VM and never returns (nothing can catch it).
"""

import _box


class Pin:
    def __init__(self, number):
        self._number = number

    def __hash__(self):
        return self._number

    def __eq__(self, other):
        return isinstance(other, Pin) and other._number == self._number

    def __repr__(self):
        return "microcontroller.pin.GPIO%d" % self._number


class _PinModule:
    pass


pin = _PinModule()
_MISSING = (22, 23, 24, 25)  # not bonded out on the ESP32-S3
for _n in range(49):
    if _n not in _MISSING:
        setattr(pin, "GPIO%d" % _n, Pin(_n))

_claimed = set()


def _claim(p, what="pin"):
    """Reserve ``p`` for a peripheral (None passes); ValueError if it is in use."""
    if p is None:
        return None
    if not isinstance(p, Pin):
        raise TypeError("%s must be of type Pin, not %s" % (what, type(p).__name__))
    if p._number in _claimed:
        raise ValueError("%s in use" % what)
    _claimed.add(p._number)
    return p


def _release(p):
    if p is not None:
        _claimed.discard(p._number)


class ResetReason:
    POWER_ON = "microcontroller.ResetReason.POWER_ON"
    BROWNOUT = "microcontroller.ResetReason.BROWNOUT"
    SOFTWARE = "microcontroller.ResetReason.SOFTWARE"
    DEEP_SLEEP_ALARM = "microcontroller.ResetReason.DEEP_SLEEP_ALARM"
    RESET_PIN = "microcontroller.ResetReason.RESET_PIN"
    WATCHDOG = "microcontroller.ResetReason.WATCHDOG"
    UNKNOWN = "microcontroller.ResetReason.UNKNOWN"
    RESCUE_DEBUG = "microcontroller.ResetReason.RESCUE_DEBUG"


class _Reason:
    """Prints like CircuitPython's enum value (``microcontroller.ResetReason.WATCHDOG``)."""

    def __init__(self, text):
        self._text = text

    def __str__(self):
        return self._text

    __repr__ = __str__

    def __eq__(self, other):
        return str(other) == self._text

    def __hash__(self):
        return hash(self._text)


for _name in dir(ResetReason):
    if not _name.startswith("_"):
        setattr(ResetReason, _name, _Reason(getattr(ResetReason, _name)))


class RunMode:
    NORMAL = "NORMAL"
    SAFE_MODE = "SAFE_MODE"
    UF2 = "UF2"
    BOOTLOADER = "BOOTLOADER"


class Processor:
    frequency = 240_000_000
    uid = b"\x00\x00\x00\x00\x00\x01"
    voltage = None  # ESP32-S3: not available

    def __init__(self):
        why = _box.CONFIG.get("reset_reason", "POWER_ON")
        self.reset_reason = getattr(ResetReason, why, ResetReason.UNKNOWN)

    @property
    def temperature(self):
        return 35.0


cpu = Processor()
cpus = (cpu, Processor())


class _Nvm:
    """``nvm.ByteArray`` over the box's nvm file (opened by boot before "/" is the drive)."""

    def __init__(self, f, size):
        self._f = f
        self._size = size

    def __len__(self):
        return self._size

    def _read(self, start, n):
        self._f.seek(start)
        data = self._f.read(n)
        return bytearray(data) + bytearray(n - len(data))

    def _index(self, i):
        if i < 0:
            i += self._size
        if not 0 <= i < self._size:
            raise IndexError("bytearray index out of range")
        return i

    def _range(self, s):
        if s.step not in (None, 1):
            raise NotImplementedError("only slices with step=1 (aka None) are supported")
        start, stop = s.start or 0, self._size if s.stop is None else s.stop
        if start < 0:
            start += self._size
        if stop < 0:
            stop += self._size
        start = min(max(start, 0), self._size)
        stop = min(max(stop, start), self._size)
        return start, stop

    def __getitem__(self, i):
        if isinstance(i, slice):
            start, stop = self._range(i)
            return self._read(start, stop - start)
        return self._read(self._index(i), 1)[0]

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            start, stop = self._range(i)
            if isinstance(value, list):
                raise NotImplementedError("array/bytes required on right side")
            data = bytes(value)
            if len(data) != stop - start:
                raise ValueError("Slice and value different lengths.")
        else:
            start = self._index(i)
            if not 0 <= value <= 255:
                raise ValueError("Bytes must be between 0 and 255.")
            data = bytes((value,))
        # The ESP32 rewrites its whole NVS blob per assignment, in the IDF, off the GC heap:
        # here only the bytes change in the file, and nothing the size of the nvm is allocated.
        self._f.seek(start)
        self._f.write(data)
        self._f.flush()

    def __delitem__(self, i):
        raise TypeError("'ByteArray' object doesn't support item deletion")


nvm = None
if _box.CONFIG.get("nvm_file") is not None:
    nvm = _Nvm(_box.CONFIG["nvm_file"], 8192)


def reset():
    """Reset the board: the host restarts the VM (reset reason SOFTWARE). Never returns."""
    _box.send(b"R"[0], b"SOFTWARE")
    _box.hold_forever()


def on_next_reset(run_mode):
    _box.CONFIG["next_run_mode"] = run_mode


def delay_us(us):
    _box.sleep_board(us / 1_000_000)


def disable_interrupts():
    pass


def enable_interrupts():
    pass


import watchdog as _wd  # noqa: E402 - the singleton lives in the watchdog stand-in

watchdog = _wd._timer
