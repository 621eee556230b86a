# SPDX-License-Identifier: MIT
"""The implementation of the ``fourwire`` stand-in (``fourwire.py`` imports it and measures its
heap; a board in a box, runs inside the VM).

Imitates ``fourwire.FourWire`` as defined in adafruit/circuitpython
``shared-bindings/fourwire/FourWire.c`` (arguments, ranges, errors) and
``shared-module/fourwire/FourWire.c`` (the bus that BusDisplay sends on). Instead of an SPI
peripheral it records every byte that would cross the wire: each command byte (D/C pin low) and
each run of data bytes (D/C pin high), in order, to the file named by :data:`WIRE_PATH` (set by
the box before the display is built; ``None`` records nothing but the counters). The host side
(``board/panel.py``) replays that file into a model of the panel's memory and writes a PNG.

Record format (big-endian): ``b"C" cmd`` for a command byte; ``b"D" len_hi len_lo data`` for
data. A reset pulse is ``b"R"``; ``b"L" duty`` is the backlight's PWM duty (0..255) set by
BusDisplay (a pin, not the bus, recorded so the host knows when the panel is dark).

On a board the FourWire object lives in a static slot (``allocate_display_bus_or_raise()``), not
on the GC heap; here it is a Python object, and :func:`heap_bytes` says how much of the VM heap
this module and its objects hold, so memory figures can take it out.
"""

import gc

WIRE_PATH = None  # file the bytes on the wire go to, or None (tests that drive the VM set it)
_DISPLAY_LIMIT = 1  # CIRCUITPY_DISPLAY_LIMIT on ESP32-S3 boards
_buses = []  # FourWire objects holding the static slots
_heap = [0, 0]  # [module import bytes, bytes held by live FourWire objects]


def heap_bytes():
    """Bytes of VM heap this stand-in holds (its module and live objects; 0 on a board)."""
    return _heap[0] + _heap[1]


def release_displays():
    """What ``displayio.release_displays()`` does to buses (the VM's displayio is C and cannot
    call back into this module: the box calls this one; ``busdisplay`` releases displays)."""
    for bus in _buses:
        bus._deinit()
    del _buses[:]
    _heap[1] = 0


def _claim(pin, what):
    try:
        import microcontroller

        claim = microcontroller._claim
    except (ImportError, AttributeError):  # no box microcontroller: nothing to reserve
        return
    claim(pin, what)


def _release(pin):
    try:
        import microcontroller

        microcontroller._release(pin)
    except (ImportError, AttributeError):
        pass


class FourWire:
    """Manage updating a display over SPI four wire protocol (stand-in: records the bytes)."""

    def __init__(
        self,
        spi_bus,
        *,
        command=None,
        chip_select=None,
        reset=None,
        baudrate=24000000,
        polarity=0,
        phase=0,
    ):
        gc.collect()
        start = gc.mem_alloc()
        try:
            import busio

            spi_type = busio.SPI
        except (ImportError, AttributeError):
            spi_type = None
        if spi_type is not None and not isinstance(spi_bus, spi_type):
            raise TypeError("spi_bus must be of type SPI, not %s" % type(spi_bus).__name__)
        if polarity not in (0, 1):
            raise ValueError("polarity must be 0-1")
        if phase not in (0, 1):
            raise ValueError("phase must be 0-1")
        if len(_buses) >= _DISPLAY_LIMIT:
            raise RuntimeError("Too many display busses; forgot displayio.release_displays() ?")
        _claim(command, "command")  # the board reserves the pins ("command in use")
        _claim(chip_select, "chip_select")
        _claim(reset, "reset")
        self._spi = spi_bus
        self._command = command
        self._chip_select = chip_select
        self._reset = reset
        self.frequency = baudrate
        self._hdr = bytearray(3)  # b"D" len_hi len_lo
        self._cmd = bytearray(b"C\x00")
        self._wire = None
        self.commands = 0  # command bytes sent (tests and the box read these)
        self.data_bytes = 0
        self.resets = 0
        self._own_wire = False
        try:
            import _box

            # opened by the box's boot while "/" was still the host's root
            self._wire = _box.CONFIG.get("display_wire_file")
        except ImportError:  # the stand-in without the box
            pass
        if self._wire is None and WIRE_PATH:
            self._wire = open(WIRE_PATH, "wb")
            self._own_wire = True
        _buses.append(self)
        if reset is not None:
            self.reset()  # the constructor pulses reset when there is a reset pin
        gc.collect()
        _heap[1] += gc.mem_alloc() - start

    def reset(self):
        """Performs a hardware reset via the reset pin; RuntimeError without one."""
        if self._reset is None:
            raise RuntimeError("No reset pin")
        self.resets += 1
        self._record(b"R")

    def send(self, command, data, *, toggle_every_byte=False):
        """Sends the given command value followed by the full set of data."""
        if not 0 <= command <= 255:
            raise ValueError("command must be 0-255")
        data = memoryview(data)  # TypeError for objects without the buffer protocol, as in C
        self._send(True, command, None)
        self._send(False, 0, data)

    # -- the bus as BusDisplay uses it (common_hal_fourwire_fourwire_send) -------------------

    def _send(self, is_command, cmd, data, length=-1):
        """One D/C-separated run: a command byte, or ``length`` bytes of ``data`` (all of it
        when ``length`` is -1). Allocates nothing."""
        hdr = self._hdr
        wire = self._wire
        if is_command:
            self.commands += 1
            if wire is not None:
                rec = self._cmd
                rec[1] = cmd
                wire.write(rec)
            return
        n = len(data) if length < 0 else length
        if n == 0:
            return
        self.data_bytes += n
        if wire is not None:
            hdr[0] = 0x44  # "D"
            hdr[1] = n >> 8
            hdr[2] = n & 0xFF
            wire.write(hdr)
            if n == len(data):
                wire.write(data)
            else:
                wire.write(memoryview(data)[:n])

    def _record_backlight(self, duty):
        """The backlight PWM duty (0.0..1.0), recorded for the host: a pin, not the bus."""
        if self._wire is not None:
            rec = self._cmd
            rec[0] = 0x4C  # "L"
            rec[1] = int(255 * duty)
            self._wire.write(rec)
            rec[0] = 0x43

    def _record(self, tag):
        if self._wire is not None:
            self._wire.write(tag)

    def _mark(self, name):
        """A note for the host between frames (a test names the screen it drew next); not a
        byte on the wire."""
        if self._wire is not None:
            name = name.encode() if isinstance(name, str) else bytes(name)
            self._wire.write(b"M" + bytes((len(name) >> 8, len(name) & 0xFF)) + name)

    def _flush(self):
        if self._wire is not None:
            self._wire.flush()

    def _deinit(self):
        for p in (self._command, self._chip_select, self._reset):
            _release(p)
        if self._wire is not None:
            if self._own_wire:
                self._wire.close()
            else:
                self._wire.flush()  # the box's file stays open for the next bus
            self._wire = None
