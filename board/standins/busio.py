# SPDX-License-Identifier: MIT
"""``busio`` stand-in: ``UART`` (the meter line, fed by the host's virtual meter), ``SPI``, ``I2C``.

UART imitates adafruit/circuitpython shared-bindings/busio/UART.c with
ports/espressif/common-hal/busio/UART.c and py/stream.c:
- ``UART(tx=None, rx=None, *, rts=None, cts=None, rs485_dir=None, rs485_invert=False,
  baudrate=9600, bits=8, parity=None, stop=1, timeout=1, receiver_buffer_size=64)``; both pins
  None, ``bits`` outside 5..9, ``stop`` outside 1..2, ``timeout`` outside 0..100 s or
  ``receiver_buffer_size`` outside 1..65535: ValueError;
- the receive buffer: ESP32 raises a size at or below the 128-byte hardware FIFO to 136; bytes
  that arrive while it is full are lost (the newest ones);
- ``read(n)``/``readinto(buf)``/``readline()``: the timeout restarts with every byte; the data
  so far when it runs out, ``None`` when nothing came; ``timeout=0``: what is buffered, else None;
- ``write(buf)`` needs a tx pin (ValueError), returns ``len(buf)``;
- ``baudrate`` settable, ``in_waiting``, ``reset_input_buffer()``, ``deinit()`` then use:
  ValueError.
Only the UART whose rx pin is the box's meter wire (``meter_rx`` in the box config) receives
the meter's bytes; its line setting (baud rate, parity) goes to the host, which sends what a
receiver with that setting would sample (``sim.hardware.resample``).

I2C imitates ports/espressif/common-hal/busio/I2C.c with nothing wired: the constructor checks
the pull-ups and raises RuntimeError("No pull up found on SDA or SCL; check your wiring").
SPI keeps the API (lock, configure, write, readinto) and discards what is written.
"""

import _box
import microcontroller

_vm_time = _box.vm_time  # the VM's ticks (after boot "time" is CircuitPython's)

_FIFO = 128  # ESP32-S3 UART hardware FIFO (UART_HW_FIFO_LEN)
_DEINIT = "Object has been deinitialized and can no longer be used. Create a new object."


def _range(value, lo, hi, name):
    if not lo <= value <= hi:
        raise ValueError("%s must be %d-%d" % (name, lo, hi))
    return value


class _Parity:
    ODD = "busio.UART.Parity.ODD"
    EVEN = "busio.UART.Parity.EVEN"


_meter_uart = None  # the UART on the meter's wire
_dropped = 0  # bytes lost to a full receive buffer (the box reports them)


def _on_meter_bytes(buf, start, end):
    if _meter_uart is not None:
        _meter_uart._arrive(buf, start, end)


_box.on(b"U"[0], _on_meter_bytes, stream=True)
_spare = [None]  # the ring buffer of a deinitialised UART, reused by the next one


class UART:
    Parity = _Parity

    def __init__(
        self,
        tx=None,
        rx=None,
        *,
        rts=None,
        cts=None,
        rs485_dir=None,
        rs485_invert=False,
        baudrate=9600,
        bits=8,
        parity=None,
        stop=1,
        timeout=1,
        receiver_buffer_size=64,
    ):
        global _meter_uart
        if tx is None and rx is None:
            raise ValueError("tx and rx cannot both be None")
        _range(bits, 5, 9, "bits")
        _range(stop, 1, 2, "stop")
        _range(int(timeout), 0, 100, "timeout")
        _range(receiver_buffer_size, 1, 65535, "receiver_buffer_size")
        if parity not in (None, _Parity.ODD, _Parity.EVEN):
            raise ValueError("invalid parity")
        microcontroller._claim(tx, "tx")
        try:
            microcontroller._claim(rx, "rx")
        except ValueError:
            microcontroller._release(tx)
            raise
        self._tx = tx
        self._rx = rx
        self._pins = (tx, rx, rts, cts)
        self._baudrate = baudrate
        self._parity = parity
        self._timeout = float(timeout)
        if receiver_buffer_size <= _FIFO:
            receiver_buffer_size = _FIFO + 8
        self._size = receiver_buffer_size
        # The ring buffer: on an ESP32 it is the IDF driver's, outside the GC heap; here it is on
        # the VM's heap (bench/board_ladder.py subtracts it). A deinitialised UART's buffer is
        # reused, so a line change does not need a second one while the first is garbage.
        spare = _spare[0]
        _spare[0] = None
        if spare is None or len(spare) < receiver_buffer_size:
            spare = None
            spare = bytearray(receiver_buffer_size)
        self._buf = spare
        self._head = 0  # next byte to read
        self._count = 0
        self._deinited = False
        self._meter = rx is not None and repr(rx).endswith(
            "GPIO%d" % _box.CONFIG.get("meter_rx", -1)
        )
        self._meter_tx = tx is not None and repr(tx).endswith(
            "GPIO%d" % _box.CONFIG.get("meter_tx", -1)
        )
        if self._meter:
            _meter_uart = self
            self._tell_line()

    # -- the line ------------------------------------------------------------------------
    def _tell_line(self):
        if self._meter:
            parity = {None: "none", _Parity.EVEN: "even", _Parity.ODD: "odd"}[self._parity]
            _box.send(b"L"[0], ("%d %s" % (self._baudrate, parity)).encode())

    def _arrive(self, data, start, end):
        """Bytes from the wire: kept while the buffer has room, the rest is lost."""
        size = self._size
        buf = self._buf
        for i in range(start, end):
            if self._count >= size:
                global _dropped
                _dropped += end - i
                _box.send(b"O"[0], str(_dropped).encode())  # the host's overflow count
                return
            buf[(self._head + self._count) % size] = data[i]
            self._count += 1

    def _check(self):
        if self._deinited:
            raise ValueError(_DEINIT)

    # -- API -----------------------------------------------------------------------------
    def deinit(self):
        global _meter_uart
        if self._deinited:
            return
        self._deinited = True
        microcontroller._release(self._tx)
        microcontroller._release(self._rx)
        if _meter_uart is self:
            _box.pump()  # bytes that arrived for this UART die with it
            _meter_uart = None
            _box.send(b"L"[0], b"off")
        _spare[0] = self._buf
        self._buf = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.deinit()

    @property
    def baudrate(self):
        self._check()
        return self._baudrate

    @baudrate.setter
    def baudrate(self, value):
        self._check()
        if value <= 0:
            raise ValueError("baudrate must be > 0")
        _box.pump()  # what arrived before the change was sampled at the old rate
        self._baudrate = value
        self._tell_line()

    @property
    def timeout(self):
        self._check()
        return self._timeout

    @timeout.setter
    def timeout(self, value):
        self._check()
        _range(int(value), 0, 100, "timeout")
        self._timeout = float(value)

    @property
    def in_waiting(self):
        self._check()
        _box.pump()
        return self._count

    def reset_input_buffer(self):
        self._check()
        _box.pump()
        self._head = 0
        self._count = 0

    def _take(self, buf, start, n):
        """Move up to ``n`` buffered bytes into ``buf[start:]``; returns how many."""
        n = min(n, self._count)
        size = self._size
        head = self._head
        for i in range(n):
            buf[start + i] = self._buf[(head + i) % size]
        self._head = (head + n) % size
        self._count -= n
        return n

    def _read_into(self, buf, limit, stop_at_newline=False):
        """py/stream.c read with the UART's inter-character timeout."""
        got = 0
        timeout_ms = int(self._timeout * 1000)
        last = _vm_time.ticks_ms()
        while got < limit:
            _box.pump()
            if self._count:
                if stop_at_newline:
                    n = self._take(buf, got, 1)
                    got += n
                    if buf[got - 1] == 0x0A:
                        break
                else:
                    got += self._take(buf, got, limit - got)
                last = _vm_time.ticks_ms()
                continue
            # board time: the host clock runs ``speed`` times slower
            waited = _vm_time.ticks_diff(_vm_time.ticks_ms(), last) * _box.speed()
            if timeout_ms == 0 or waited >= timeout_ms:
                break
            _vm_time.sleep_ms(1)
        return got

    def read(self, nbytes=None):
        self._check()
        if self._rx is None:
            raise ValueError("No RX pin")
        if nbytes is None:
            out = bytearray()
            chunk = bytearray(64)
            while True:
                n = self._read_into(chunk, len(chunk))
                out.extend(chunk[:n])
                if n < len(chunk):
                    break
            return bytes(out) if out else None
        buf = bytearray(nbytes)
        n = self._read_into(buf, nbytes)
        if not n:
            return None
        return bytes(buf[:n])

    def readinto(self, buf, nbytes=None):
        self._check()
        if self._rx is None:
            raise ValueError("No RX pin")
        limit = len(buf) if nbytes is None else min(nbytes, len(buf))
        n = self._read_into(buf, limit)
        return n if n else None

    def readline(self):
        self._check()
        if self._rx is None:
            raise ValueError("No RX pin")
        buf = bytearray(256)
        out = bytearray()
        while True:
            n = self._read_into(buf, 1, True)
            if not n:
                break
            out.append(buf[0])
            if buf[0] == 0x0A:
                break
        return bytes(out) if out else None

    def write(self, buf):
        self._check()
        if self._tx is None:
            raise ValueError("No TX pin")
        data = bytes(buf)
        if self._meter_tx:
            _box.send(b"T"[0], data)
        # blocks until sent: bits * bytes / baud
        _box.sleep_board(len(data) * 10 / self._baudrate)
        return len(data)


class SPI:
    """busio.SPI (shared-bindings/busio/SPI.c): lock, configure, write/readinto; no device."""

    def __init__(self, clock, MOSI=None, MISO=None, half_duplex=False):  # noqa: N803 - API names
        if MOSI is None and MISO is None:
            raise ValueError("Must provide MISO or MOSI pin")
        microcontroller._claim(clock, "clock")
        microcontroller._claim(MOSI, "MOSI")
        microcontroller._claim(MISO, "MISO")
        self._pins = (clock, MOSI, MISO)
        self._locked = False
        self._deinited = False
        self.frequency = 250000
        self.bytes_written = 0

    def deinit(self):
        if not self._deinited:
            self._deinited = True
            for p in self._pins:
                microcontroller._release(p)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.deinit()

    def _check(self):
        if self._deinited:
            raise ValueError(_DEINIT)

    def try_lock(self):
        self._check()
        if self._locked:
            return False
        self._locked = True
        return True

    def unlock(self):
        self._check()
        self._locked = False

    def configure(self, *, baudrate=100000, polarity=0, phase=0, bits=8):
        self._check()
        if not self._locked:
            raise RuntimeError("Function requires lock")
        self.frequency = baudrate

    def write(self, buf, *, start=0, end=None):
        self._check()
        if not self._locked:
            raise RuntimeError("Function requires lock")
        end = len(buf) if end is None else end
        self.bytes_written += max(0, end - start)

    def readinto(self, buf, *, start=0, end=None, write_value=0):
        self._check()
        end = len(buf) if end is None else end
        for i in range(start, end):
            buf[i] = 0xFF  # nothing drives MISO: the line floats high

    def write_readinto(self, out_buf, in_buf, **kwargs):
        self.write(out_buf)
        self.readinto(in_buf)


class I2C:
    """busio.I2C with nothing wired: ESP32 checks the pull-ups first (RuntimeError)."""

    def __init__(self, scl, sda, *, frequency=100000, timeout=255):
        raise RuntimeError("No pull up found on SDA or SCL; check your wiring")
