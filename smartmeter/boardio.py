# SPDX-License-Identifier: MIT
"""The board's hardware as the running firmware uses it (device only): the clock, WiFi, console,
watchdog, the meter UART with its line setting, the SD card's (re)mount.

``smartmeter/device.py`` builds these from the pin names in settings.toml at boot and then
leaves the heap; what the loop calls on the hardware lives here. Nothing here is imported on the
PC (``sim/`` has the PC version of each).
"""

import gc
import os
import sys
import time

try:
    from typing import Any
except ImportError:  # CircuitPython: local annotations are never evaluated
    pass

import board
import busio
import microcontroller
import supervisor
from micropython import const

from smartmeter import hardware

# UART receive buffer, sized for the longest blocking step of the loop. The worst single steps
# are an SD flush+sync on a slow card (<= 0.5 s), a Graphite/MQTT connect that times out
# (0.5 s each), an NTP query (<= 1 s) and a WiFi reconnect attempt (the radio call can block for
# several seconds). 8 KiB holds 37 s of M-Bus at 2400 baud (218 bytes/s) and 9 s of HDLC at
# 9600 baud (873 bytes/s): every blocking step fits with a wide margin. At 115200 baud the
# T210-D-r sends one 511-byte burst every few seconds, so 8 KiB still holds 16 bursts.
_UART_BUFFER = const(8192)
_RTC_VALID_AFTER = const(1_600_000_000)  # before NTP the RTC counts from 2000-01-01
# marks a saved line setting in nvm (module level: MicroPython drops a class-level _NAME = const())
_LINE_MARK = const(0xA5)


def pin(name):
    if not name:
        return None
    return getattr(board, name)


class Clock:
    """Monotonic ms ticks (wrap at 2**29) and UTC epoch seconds, None until the RTC is set."""

    def ticks_ms(self):
        return supervisor.ticks_ms()

    def time(self):
        now = time.time()
        return now if now > _RTC_VALID_AFTER else None

    def __init__(self, pool=None):
        self.pool = pool

    def sync_ntp(self, server):
        """Set the RTC from NTP; True on success."""
        if self.pool is None:
            return False
        import rtc

        from smartmeter import ntp
        from smartmeter.timeutil import ticks_diff

        # one UDP query: DNS + at most 1 s for a valid answer, by our clock (docs/security.md)
        epoch = ntp.query(self.pool, server, supervisor.ticks_ms, ticks_diff, 1000)
        if epoch is None:
            return False
        rtc.RTC().datetime = time.localtime(epoch)
        return True


class Radio:
    """WiFi view for the app: connected, ip, rssi, reconnect()."""

    def __init__(self, wifi, ssid, password, web_port=8080):
        self._wifi = wifi
        self._ssid = ssid
        self._password = password
        self._web_port = web_port
        self._mdns = None

    @property
    def connected(self):
        return self._wifi.radio.connected

    @property
    def ip(self):
        addr = self._wifi.radio.ipv4_address
        return str(addr) if addr else None

    @property
    def rssi(self):
        info = self._wifi.radio.ap_info
        return info.rssi if info else None

    def reconnect(self):
        if self._ssid:
            self._wifi.radio.connect(self._ssid, self._password, timeout=5)

    def start_ap(self, ssid, password):
        """Open the setup access point (the station keeps trying meanwhile)."""
        self._wifi.radio.start_ap(ssid, password)

    def stop_ap(self):
        self._wifi.radio.stop_ap()

    def start_mdns(self, hostname):
        """``<hostname>.local`` and an _http._tcp service for the web page (WEB_PORT)."""
        import mdns

        server = mdns.Server(self._wifi.radio)
        server.hostname = hostname
        server.advertise_service(service_type="_http", protocol="_tcp", port=self._web_port)
        self._mdns = server


class Console:
    """USB serial: one line out per call, single characters in without blocking."""

    def read_char(self):
        if supervisor.runtime.serial_bytes_available:
            return sys.stdin.read(1)
        return None

    def write(self, line):
        print(line)


class Watchdog:
    """``microcontroller.watchdog`` in RESET mode, fed by the loop after each completed pass."""

    def __init__(self, timeout_s):
        from watchdog import WatchDogMode

        wd = microcontroller.watchdog
        if wd is None:
            raise RuntimeError("this board has no watchdog")
        wd.timeout = timeout_s
        wd.mode = WatchDogMode.RESET
        self._wd = wd
        self.every_s = max(1, timeout_s // 2)  # how often a loop that only waits feeds it

    def feed(self):
        self._wd.feed()


class Hardware(hardware.Hardware):
    """The board's hardware (see ``smartmeter.hardware``, ``smartmeter.interfaces``)."""

    def __init__(self):
        super().__init__(
            clock=Clock(),
            console=Console(),
            mem_free=getattr(gc, "mem_free", None),  # CircuitPython's gc has it
            aes_backend="aesio",
        )
        self.problems = []

    def reset(self, why):
        """Log why, flush the SD card, then reset the board."""
        print("reset:", why)
        try:
            os.sync()
        except (AttributeError, OSError):
            pass
        microcontroller.reset()


def _parity(name):
    parity = busio.UART.Parity
    return {"even": parity.EVEN, "odd": parity.ODD}.get(name)


class MeterLine:
    """The meter UART, rebuilt when the line search changes the setting.

    ``baudrate`` is writable on a live ``busio.UART``; parity is not, so a parity change
    deinitialises the UART and builds a new one on the same pins (this also empties the
    receive buffer, whose bytes belong to the old setting anyway).
    """

    def __init__(self, cfg):
        self.rx = pin(cfg.PIN_METER_RX)
        self.tx = pin(cfg.PIN_METER_TX)
        self.uart = None
        self.parity = None

    def set_line(self, baudrate, parity):
        """Apply (baudrate, parity); returns the UART to read from now on."""
        uart = self.uart
        if uart is not None and parity == self.parity:
            if uart.baudrate != baudrate:
                uart.baudrate = baudrate
                uart.reset_input_buffer()
            return uart
        if uart is not None:
            uart.deinit()
            self.uart = None
        self.uart = busio.UART(
            tx=self.tx,
            rx=self.rx,
            baudrate=baudrate,
            bits=8,
            parity=_parity(parity),
            stop=1,
            timeout=0,
            receiver_buffer_size=_UART_BUFFER,
        )
        self.parity = parity
        return self.uart


class LineMemory:
    """The line setting that worked last, in ``microcontroller.nvm`` (survives resets and
    power cuts; CIRCUITPY is read-only to code). Two bytes: a marker and the index."""

    def load(self):
        nvm = microcontroller.nvm
        if nvm is None or len(nvm) < 2 or nvm[0] != _LINE_MARK:
            return None
        return nvm[1]

    def save(self, index):
        nvm = microcontroller.nvm
        if nvm is not None and len(nvm) >= 2 and (nvm[0], nvm[1]) != (_LINE_MARK, index):
            nvm[0:2] = bytes((_LINE_MARK, index))


def sd_mounter(cfg):
    """A callable that (re)mounts the SD card at /sd; raises OSError when there is no card."""
    state: dict = {"sd": None}

    def mount():
        import storage

        try:
            storage.umount("/sd")
        except (OSError, ValueError):
            pass
        if state["sd"] is not None:
            try:
                state["sd"].deinit()
            except (AttributeError, OSError):
                pass
            state["sd"] = None
        if cfg.SD_MODE == "sdio":
            import sdioio

            data = [pin(n) for n in (cfg.PIN_SD_D0, cfg.PIN_SD_D1, cfg.PIN_SD_D2, cfg.PIN_SD_D3)]
            sd: Any = sdioio.SDCard(
                clock=pin(cfg.PIN_SD_CLK),
                command=pin(cfg.PIN_SD_CMD),
                data=data,
                frequency=25_000_000,
            )
        else:
            import sdcardio

            # SPI mode on the same socket wiring: CLK = SCK, CMD = MOSI, D0 = MISO, D3 = CS
            spi = busio.SPI(pin(cfg.PIN_SD_CLK), MOSI=pin(cfg.PIN_SD_CMD), MISO=pin(cfg.PIN_SD_D0))
            sd = sdcardio.SDCard(spi, pin(cfg.PIN_SD_D3))
        state["sd"] = sd
        storage.mount(storage.VfsFat(sd), "/sd")
        try:
            os.mkdir(cfg.LOG_DIR)
        except OSError:
            pass  # exists

    return mount
