# SPDX-License-Identifier: MIT
"""E+E Elektronik HTE501 humidity/temperature sensor on I2C, non-blocking.

The sensor runs in periodic measurement mode; :meth:`HTE501.poll` is called from the super-loop
and does at most a couple of short I2C transactions when something is due. It never waits, never
spins on the bus lock and never raises for bus trouble: a missing, NACKing or bus-holding sensor
leaves ``temperature``/``humidity`` at ``None``, counts the failure and is probed again with
exponential backoff (1 s doubling to 60 s). After a failure the periodic mode is set up again,
so a sensor that was unplugged or power-cycled comes back by itself.

Facts from the HTE501 data sheet (v1.3, chapter 6):

* address 0x40 (A1..A3 select 0x40..0x47); every command is two bytes, MSB first;
* ``20 1E`` start periodic measurement, ``30 93`` break (back to idle), ``30 A2`` soft reset;
* ``F3 52`` read status register 2 -> ``S_hi S_lo CRC``; bit 15 (bit 7 of ``S_hi``) = new data;
* ``E0 00`` fetch periodic result -> ``T_hi T_lo CRC RH_hi RH_lo CRC`` (NACK if no result);
* ``72 A7 10 lo hi CRC`` writes the measurement interval (LSB = 50 ms, only while idle);
  the CRC covers ``10 lo hi``;
* CRC-8: polynomial 0x31, init 0xFF, no reflection, no final XOR, over each 2-byte word;
* T = raw / 100 degC, RH = raw / 100 %RH. The data sheet prints T as ``(MSB*256+LSB)/100``
  but the operating range is -40..135 degC, so negative values must come as a 16-bit two's
  complement word (E+E's own ESPHome component decodes it that way). 135 degC is 13500, far
  below 0x8000, so reading the word as signed is unambiguous. RH is unsigned.

Bus interface used (``busio.I2C``): ``try_lock()``, ``unlock()``, ``writeto(addr, buf)`` and
``writeto_then_readfrom(addr, out, in_)``. CircuitPython's ESP32 port raises ``OSError(19)``
(ENODEV) for any NACK, address or data, and ``OSError(5)`` (EIO) for other failures such as
the ESP-IDF timeout on a bus held low; other ports may use 116 (ETIMEDOUT). A transaction on a
held bus can block for the IDF timeout (about 1 s); the backoff bounds how often that happens.

Time comes from outside: ``poll(now_ms)`` or the ``ticks_ms`` callable given at init, ticks
that wrap at 2**29 (``supervisor.ticks_ms()``, ``adafruit_ticks.ticks_ms()``); all arithmetic is
wrap-safe. The driver imports nothing from the firmware, so it can be copied alone.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(expr):  # type: ignore[misc]  # mypy sees micropython.const from the stubs
        return expr


_TICKS_PERIOD = const(1 << 29)
_TICKS_MAX = const((1 << 29) - 1)
_TICKS_HALF = const(1 << 28)

_DEFAULT_ADDRESS = const(0x40)
_CRC_POLY = const(0x31)
_CRC_INIT = const(0xFF)
_READY_BIT = const(0x80)  # bit 7 of S_hi = bit 15 of status register 2

_ENODEV = const(19)
_EIO = const(5)

_SETTLE_MS = const(100)  # after "break": let an ongoing measurement finish before writing RAM
_RECHECK_MS = const(200)  # status said "not ready" yet: look again this much later
_FIRST_CHECK_MS = const(200)  # first status check after starting periodic mode
_LOCK_RETRY_MS = const(50)  # bus locked by another user: try again on a later pass
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60000)
_MAX_CRC_RUN = const(3)  # this many CRC errors in a row count as a communication failure
_MAX_INTERVAL_UNITS = const(0xFFFF)  # 50 ms units, data sheet limit (54 min 36.75 s)

# Phases of the small state machine
_PH_BREAK = const(0)  # next: send "break" so the sensor is idle and accepts settings
_PH_CONFIG = const(1)  # next: write the interval, start periodic mode
_PH_RUN = const(2)  # periodic mode running: check status, fetch

_CMD_PERIODIC = b"\x20\x1e"
_CMD_BREAK = b"\x30\x93"
_CMD_STATUS2 = b"\xf3\x52"
_CMD_FETCH = b"\xe0\x00"


def crc8(buf, start=0, end=None):
    """CRC-8 of ``buf[start:end]``: polynomial 0x31, init 0xFF, MSB first, no final XOR."""
    if end is None:
        end = len(buf)
    crc = _CRC_INIT
    for i in range(start, end):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ _CRC_POLY) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def _word_ok(buf, pos):
    """True when the CRC byte after the word at ``buf[pos:pos+2]`` matches."""
    return crc8(buf, pos, pos + 2) == buf[pos + 2]


def decode_temperature(hi, lo):
    """Degrees Celsius from the two temperature bytes (signed 16-bit, 0.01 degC)."""
    raw = (hi << 8) | lo
    if raw & 0x8000:
        raw -= 0x10000
    return raw / 100


def decode_humidity(hi, lo):
    """Percent relative humidity from the two humidity bytes (unsigned, 0.01 %RH)."""
    return ((hi << 8) | lo) / 100


def ticks_diff(new, old):
    """``new - old`` for ticks that wrap at 2**29 (valid below 2**28 ms)."""
    return ((new - old + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


def ticks_add(ticks, delta):
    """``ticks + delta`` wrapped at 2**29."""
    return (ticks + delta) % _TICKS_PERIOD


class HTE501:
    """Non-blocking HTE501 reader in periodic measurement mode.

    :param i2c: a ``busio.I2C``-like bus (try_lock/unlock/writeto/writeto_then_readfrom)
    :param int address: 7-bit address, 0x40..0x47
    :param period_s: measurement interval in seconds (written to the sensor, 0.05 s steps)
    :param ticks_ms: callable returning 2**29-wrapping ms ticks, used when ``poll()`` gets no
        time (``poll()`` without either raises ``TypeError``)
    """

    def __init__(self, i2c, address=_DEFAULT_ADDRESS, period_s=5, ticks_ms=None):
        units = min(max(int(period_s * 20 + 0.5), 1), _MAX_INTERVAL_UNITS)  # 50 ms units
        self._i2c = i2c
        self.address = address
        self.period_ms = units * 50
        # values older than three periods (at least 3 s) are dropped
        self.stale_ms = max(3 * self.period_ms, 3000)
        self._ticks_ms = ticks_ms
        # preallocated command/response buffers
        cfg = bytearray(6)
        cfg[0] = 0x72
        cfg[1] = 0xA7
        cfg[2] = 0x10
        cfg[3] = units & 0xFF
        cfg[4] = units >> 8
        cfg[5] = crc8(cfg, 2, 5)
        self._cmd_interval = bytes(cfg)
        self._status = bytearray(3)
        self._data = bytearray(6)
        # public results
        self.temperature = None
        self.humidity = None
        self.state = "absent"
        self.last_error = ""
        # counters
        self.reads_ok = 0
        self.errors = 0  # every failed attempt, whatever the cause
        self.crc_errors = 0
        self.nack_errors = 0  # OSError 19/5: sensor missing, not answering or bus timeout
        self.bus_errors = 0  # any other bus failure (timeout, stuck bus, RuntimeError)
        self.lock_busy = 0  # the bus lock was held by someone else
        self.not_ready = 0  # status polled, no new measurement yet (not an error)
        self.restarts = 0  # periodic mode (re)started
        # internal
        self._phase = _PH_BREAK
        self._next_ms = None  # None: due at once
        self._backoff_ms = 0
        self._crc_run = 0
        self._absent = True  # last failure was "address not acknowledged" (or nothing yet)
        self._last_ok_ms = None  # ticks of the last good reading
        self._run_since_ms = 0  # ticks of the last start or good reading (for "no data")

    # -- public ------------------------------------------------------------------------------

    @property
    def backoff_ms(self):
        """Current retry delay after communication failures (0 while healthy)."""
        return self._backoff_ms

    def poll(self, now_ms=None):
        """Do whatever is due; return True when new values arrived. Never blocks or raises
        for bus trouble.

        :param now_ms: current 2**29-wrapping ms ticks (default: ``ticks_ms()`` given at init)
        """
        if now_ms is None:
            if self._ticks_ms is None:
                raise TypeError("HTE501.poll() needs now_ms or a ticks_ms callable")
            now_ms = self._ticks_ms()
        self._check_stale(now_ms)
        if self._next_ms is not None and ticks_diff(now_ms, self._next_ms) < 0:
            return False
        i2c = self._i2c
        if not i2c.try_lock():
            self.lock_busy += 1
            self._fail("bus locked by another user")
            self._next_ms = ticks_add(now_ms, _LOCK_RETRY_MS)
            return False
        try:
            return self._step(now_ms)
        except OSError as exc:
            code = exc.args[0] if exc.args else None
            if code in (_ENODEV, _EIO):
                self.nack_errors += 1
                self._comm_failed(now_ms, "no ACK (errno " + str(code) + ")", code == _ENODEV)
            else:
                self.bus_errors += 1
                self._comm_failed(now_ms, "bus error (errno " + str(code) + ")", False)
        except RuntimeError:  # e.g. "SDA or SCL needs a pull up", bus in a bad state
            self.bus_errors += 1
            self._comm_failed(now_ms, "bus error", False)
        finally:
            i2c.unlock()
        return False

    def stop(self):
        """Send "break" so the sensor returns to idle (best effort, never raises)."""
        if not self._i2c.try_lock():
            return False
        try:
            self._i2c.writeto(self.address, _CMD_BREAK)
            return True
        except (OSError, RuntimeError):
            return False
        finally:
            self._i2c.unlock()
            self._phase = _PH_BREAK

    # -- internals ---------------------------------------------------------------------------

    def _step(self, now_ms):
        i2c = self._i2c
        addr = self.address
        if self._phase == _PH_BREAK:
            # the sensor may still be in periodic mode from before a board reset; settings can
            # only be written while idle, so stop it and give a running measurement time to end
            i2c.writeto(addr, _CMD_BREAK)
            self._phase = _PH_CONFIG
            self._next_ms = ticks_add(now_ms, _SETTLE_MS)
            return False
        if self._phase == _PH_CONFIG:
            i2c.writeto(addr, self._cmd_interval)
            i2c.writeto(addr, _CMD_PERIODIC)
            self.restarts += 1
            self._phase = _PH_RUN
            self._run_since_ms = now_ms
            # look early: if the first result is not there yet, the 200 ms re-checks lock the
            # poll phase to just after the sensor's own measurement schedule
            self._next_ms = ticks_add(now_ms, _FIRST_CHECK_MS)
            return False
        # periodic mode: is there a new measurement?
        st = self._status
        i2c.writeto_then_readfrom(addr, _CMD_STATUS2, st)
        if not _word_ok(st, 0):
            self._crc_failed(now_ms, "CRC error in status")
            return False
        if not st[0] & _READY_BIT:
            self.not_ready += 1
            if ticks_diff(now_ms, self._run_since_ms) > self.stale_ms:
                # no data for three periods: periodic mode was lost (sensor reset, brown-out)
                self._fail("no new data, restarting periodic mode", False)
                self._phase = _PH_BREAK
                self._next_ms = None
            else:
                self._next_ms = ticks_add(now_ms, _RECHECK_MS)
            return False
        d = self._data
        i2c.writeto_then_readfrom(addr, _CMD_FETCH, d)
        if not (_word_ok(d, 0) and _word_ok(d, 3)):
            self._crc_failed(now_ms, "CRC error in data")
            return False
        self.temperature = decode_temperature(d[0], d[1])
        self.humidity = decode_humidity(d[3], d[4])
        self.reads_ok += 1
        self.state = "ok"
        self._absent = False
        self._crc_run = 0
        self._backoff_ms = 0
        self._last_ok_ms = now_ms
        self._run_since_ms = now_ms
        self._next_ms = ticks_add(now_ms, self.period_ms)
        return True

    def _fail(self, why, absent=None):
        """Count a failed attempt; while no fresh values exist, show it in ``state``."""
        self.errors += 1
        self.last_error = why
        if absent is not None:
            self._absent = absent
        if self.temperature is None:
            self.state = "absent" if self._absent else "error"

    def _crc_failed(self, now_ms, why):
        self.crc_errors += 1
        self._crc_run += 1
        if self._crc_run >= _MAX_CRC_RUN:
            self._crc_run = 0
            self._comm_failed(now_ms, why, False)
            return
        self._fail(why, False)
        self._next_ms = ticks_add(now_ms, _RECHECK_MS)

    def _comm_failed(self, now_ms, why, absent):
        self._fail(why, absent)
        b = self._backoff_ms
        b = _BACKOFF_MIN_MS if b == 0 else min(2 * b, _BACKOFF_MAX_MS)
        self._backoff_ms = b
        self._next_ms = ticks_add(now_ms, b)
        self._phase = _PH_BREAK  # set periodic mode up again once the sensor answers

    def _check_stale(self, now_ms):
        if self._last_ok_ms is None or self.temperature is None:
            return
        if ticks_diff(now_ms, self._last_ok_ms) > self.stale_ms:
            self.temperature = None
            self.humidity = None
            self.state = "absent" if self._absent else "error"
            if not self.last_error:
                self.last_error = "values stale"
