# SPDX-License-Identifier: MIT
"""Host fakes for I2C: a ``busio.I2C``-like bus and an HTE501 with the data sheet's behaviour.

``FakeI2C`` enforces the lock like CircuitPython (``RuntimeError`` without it), records every
transaction byte-exactly in ``log`` and can simulate a bus held low (each transaction then costs
``stuck_cost_ms`` of fake time and raises ``OSError(stuck_errno)``, EIO by default like the
ESP32 port after the IDF timeout) or a lock
held by another user (``try_lock()`` returns False).

``FakeHTE501`` answers according to the last command: idle/periodic modes, a measurement
schedule driven by a fake clock, the data-ready bit (bit 15 of status register 2) that clears
after a fetch, NACK of a fetch without new data, CRC-protected words (its own CRC code, so the
driver's CRC is checked independently), settings only writable while idle, unplugging
(``OSError(19)``), NACKing everything (``OSError(5)``) and corrupted CRC bytes.
"""

ENODEV = 19  # CircuitPython: address not acknowledged
EIO = 5
ETIMEDOUT = 116

_TICKS_MASK = (1 << 29) - 1
_REG_INTERVAL = 0x10  # sensor settings RAM: measurement interval, 2 bytes LSB first


class FakeClock:
    """Millisecond clock; ``ticks()`` wraps at 2**29 like ``supervisor.ticks_ms()``."""

    def __init__(self, start_ms=0):
        self.ms = start_ms  # unbounded "real" time

    def ticks(self):
        return self.ms & _TICKS_MASK

    __call__ = ticks

    def advance(self, ms):
        self.ms += ms


def _crc8_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) if crc & 0x80 else (crc << 1)
        table.append(crc & 0xFF)
    return table


_CRC_TABLE = _crc8_table()


def ref_crc8(data):
    """Table-driven CRC-8 (poly 0x31, init 0xFF), independent of the driver's bitwise code."""
    crc = 0xFF
    for b in data:
        crc = _CRC_TABLE[crc ^ b]
    return crc


class FakeI2C:
    """A ``busio.I2C`` stand-in with devices attached by address."""

    def __init__(self, clock=None):
        self.clock = clock
        self.devices = {}
        self.log = []  # ("w", addr, bytes) | ("wr", addr, bytes, nread) | ("r", addr, nread)
        self.locked = False
        self.held_by_other = False
        self.lock_attempts = 0
        self.unlock_without_lock = 0
        self.stuck = False
        self.stuck_cost_ms = 25
        self.stuck_errno = EIO  # the ESP32 port maps the IDF timeout to EIO; others ETIMEDOUT
        self.bus_time_ms = 0  # fake time spent inside failing transactions

    def attach(self, device):
        self.devices[device.address] = device
        return device

    # -- lock ------------------------------------------------------------------------------
    def try_lock(self):
        self.lock_attempts += 1
        if self.held_by_other or self.locked:
            return False
        self.locked = True
        return True

    def unlock(self):
        if not self.locked:
            self.unlock_without_lock += 1
        self.locked = False

    def _check_lock(self):
        if not self.locked:
            raise RuntimeError("Function requires lock")

    # -- transfers -------------------------------------------------------------------------
    def _target(self, addr):
        if self.stuck:
            self.bus_time_ms += self.stuck_cost_ms
            if self.clock is not None:
                self.clock.advance(self.stuck_cost_ms)
            raise OSError(self.stuck_errno)
        dev = self.devices.get(addr)
        if dev is None:
            raise OSError(ENODEV)
        dev.check_address()
        return dev

    def writeto(self, address, buffer, *, start=0, end=None):
        self._check_lock()
        data = bytes(buffer[start:end])
        self.log.append(("w", address, data))
        self._target(address).on_write(data)

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        self._check_lock()
        view = memoryview(buffer)[start:end]
        self.log.append(("r", address, len(view)))
        resp = self._target(address).on_read(len(view))
        view[:] = resp

    def writeto_then_readfrom(  # noqa: PLR0913 - same signature as busio.I2C
        self, address, out_buffer, in_buffer, *, out_start=0, out_end=None, in_start=0, in_end=None
    ):
        self._check_lock()
        data = bytes(out_buffer[out_start:out_end])
        view = memoryview(in_buffer)[in_start:in_end]
        self.log.append(("wr", address, data, len(view)))
        dev = self._target(address)
        dev.on_write(data)
        view[:] = dev.on_read(len(view))

    def scan(self):
        self._check_lock()
        return sorted(a for a, d in self.devices.items() if d.present and not self.stuck)

    # -- helpers for tests -----------------------------------------------------------------
    def writes(self):
        """Bytes written per transaction, in order (reads add no entry)."""
        return [e[2] for e in self.log if e[0] in ("w", "wr")]

    def clear(self):
        self.log.clear()


class FakeHTE501:
    """HTE501 behaviour from the data sheet (chapter 6), timed by ``clock.ms``."""

    T_MEAS_MS = 20  # a measurement completes this long after it starts

    def __init__(self, clock, address=0x40, temperature=21.5, humidity=45.0):
        self.clock = clock
        self.address = address
        self.temperature = temperature
        self.humidity = humidity
        self.present = True  # False: nobody ACKs the address -> OSError(ENODEV)
        self.nack_all = False  # True: address ACKed, command NACKed -> OSError(EIO)
        self.corrupt_crc = 0  # corrupt the CRC byte of this many following responses
        self.commands = []  # every accepted or rejected command, as bytes
        self.violations = []  # protocol misuse seen (tests assert this stays empty)
        self.power_cycle(result_at_power_up=False)

    # -- scenario controls -----------------------------------------------------------------
    def power_cycle(self, result_at_power_up=True):
        """Back to power-up defaults: idle, 1 s interval. One power-up result may be fetched."""
        self.mode = "idle"
        self.interval_units = 0x0014  # 1 s, data sheet default
        self.t0 = self.clock.ms
        self.completed = 1 if result_at_power_up else 0
        self.fetched = 0
        self.pending = None  # response bytes for the next read header, or "nack"

    def unplug(self):
        self.present = False

    def plug_in(self):
        """Reconnect: the sensor lost power, so it is idle with default settings."""
        self.power_cycle(result_at_power_up=True)
        self.present = True

    @property
    def interval_ms(self):
        return self.interval_units * 50

    # -- measurement model -----------------------------------------------------------------
    def _completed(self):
        if self.mode != "periodic":
            return self.completed
        elapsed = self.clock.ms - self.t0
        if elapsed < self.T_MEAS_MS:
            return self.completed
        step = max(self.interval_ms, self.T_MEAS_MS)
        return self.completed + 1 + (elapsed - self.T_MEAS_MS) // step

    def data_ready(self):
        return self._completed() > self.fetched

    @staticmethod
    def raw_temperature(t):
        return round(t * 100) & 0xFFFF  # two's complement word

    def _word(self, value):
        w = bytearray((value >> 8, value & 0xFF))
        crc = ref_crc8(w)
        if self.corrupt_crc:
            self.corrupt_crc -= 1
            crc ^= 0x5A
        w.append(crc)
        return w

    def _measurement(self):
        rh = round(self.humidity * 100) & 0xFFFF
        return self._word(self.raw_temperature(self.temperature)) + self._word(rh)

    # -- bus side --------------------------------------------------------------------------
    def check_address(self):
        if not self.present:
            raise OSError(ENODEV)
        if self.nack_all:
            raise OSError(EIO)

    def _reject(self, why):
        self.violations.append(why)
        raise OSError(EIO)

    def on_write(self, data):
        data = bytes(data)
        self.commands.append(data)
        self.pending = None
        handler = self._HANDLERS.get((data[:2], len(data)))
        if handler is None:
            self._reject("unknown command " + data.hex())
        handler(self, data)

    def _cmd_start_periodic(self, _data):
        if self.mode != "periodic":
            self.completed = self._completed()
            self.mode = "periodic"
            self.t0 = self.clock.ms

    def _cmd_break(self, _data):
        self.completed = self._completed()
        self.mode = "idle"

    def _cmd_soft_reset(self, _data):
        self.power_cycle(result_at_power_up=False)

    def _cmd_status2(self, _data):
        self.pending = self._word(0x8000 if self.data_ready() else 0x0000)

    def _cmd_fetch(self, _data):
        if self.data_ready():
            self.fetched = self._completed()
            self.pending = self._measurement()
        else:
            self.pending = "nack"  # data sheet 6.6: NACK if no results available

    def _cmd_single_shot(self, _data):
        self._cmd_break(_data)
        self.pending = self._measurement()

    def _cmd_write_settings(self, data):
        if data[2] != _REG_INTERVAL:
            self._reject("write to unmodelled register " + data.hex())
        if self.mode != "idle":
            self._reject("settings written while not idle")
        if ref_crc8(data[2:5]) != data[5]:
            self._reject("bad CRC in settings write")
        self.interval_units = data[3] | (data[4] << 8)

    def _cmd_read_settings(self, data):
        if data[2] != _REG_INTERVAL:
            self._reject("read of unmodelled register " + data.hex())
        self.pending = bytearray((self.interval_units & 0xFF, self.interval_units >> 8))

    _HANDLERS = {
        (b"\x20\x1e", 2): _cmd_start_periodic,
        (b"\x30\x93", 2): _cmd_break,
        (b"\x30\xa2", 2): _cmd_soft_reset,
        (b"\xf3\x52", 2): _cmd_status2,
        (b"\xe0\x00", 2): _cmd_fetch,
        (b"\x2c\x1b", 2): _cmd_single_shot,
        (b"\x72\xa7", 6): _cmd_write_settings,
        (b"\x72\xa7", 3): _cmd_read_settings,
    }

    def on_read(self, n):
        resp = self.pending
        self.pending = None
        if resp is None or resp == "nack":
            raise OSError(EIO)
        out = bytes(resp[:n])
        # reading past the response gives 0xFF (bus released high)
        return out + b"\xff" * (n - len(out))
