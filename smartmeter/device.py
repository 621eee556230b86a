# SPDX-License-Identifier: MIT
"""Build the board's hardware object from the pin names in settings.toml (device only).

Each part is optional: a missing display, SD card, sensor or WiFi is logged and left as None,
and the app runs on with what is there. Nothing here is imported on the PC (``sim/`` builds the
PC version of the same object).
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

from smartmeter import app, hardware

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


def _pin(name):
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
        self.rx = _pin(cfg.PIN_METER_RX)
        self.tx = _pin(cfg.PIN_METER_TX)
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


def build(cfg):
    """Build the Hardware for Config ``cfg``; each failing part is recorded and skipped."""
    hw = Hardware()

    def attempt(what, fn):
        try:
            return fn()
        except MemoryError:
            gc.collect()
            hw.problems.append("%s: not enough memory" % what)
            return None
        except Exception as exc:  # noqa: BLE001 - optional hardware must not stop the board
            hw.problems.append("%s: %s" % (what, exc))
            return None

    line = MeterLine(cfg)
    hw.uart = attempt("meter UART", lambda: line.set_line(cfg.baudrate, cfg.parity))
    if hw.uart is not None:
        hw.set_line = line.set_line
        hw.meter_tx = line.tx is not None
        hw.line_memory = LineMemory()
    hw.display = attempt("display", lambda: _display(cfg))
    hw.keys = attempt("buttons", lambda: _keys(cfg))
    hw.i2c = attempt("I2C", lambda: busio.I2C(_pin(cfg.PIN_I2C_SCL), _pin(cfg.PIN_I2C_SDA)))
    hw.log_dir = cfg.LOG_DIR
    if cfg.SD_MODE != "none":
        hw.mount = _sd_mounter(cfg)
    try:
        import wifi

        hw.radio = Radio(wifi, cfg.CIRCUITPY_WIFI_SSID, cfg.CIRCUITPY_WIFI_PASSWORD, cfg.WEB_PORT)
        import socketpool

        hw.pool = socketpool.SocketPool(wifi.radio)
        if cfg.MQTT_TLS:
            import adafruit_connection_manager

            hw.ssl_context = adafruit_connection_manager.get_radio_ssl_context(wifi.radio)
        hw.clock = Clock(hw.pool)
        try:
            wifi.radio.hostname = cfg.HOSTNAME
        except (AttributeError, ValueError):
            pass
    except ImportError:
        hw.problems.append("wifi: not available on this board")
    if cfg.WATCHDOG_S:
        hw.watchdog = attempt("watchdog", lambda: Watchdog(cfg.WATCHDOG_S))
    return hw


def _display(cfg):
    import displayio
    import fourwire
    from adafruit_st7735r import ST7735R

    displayio.release_displays()
    spi = busio.SPI(clock=_pin(cfg.PIN_TFT_SCK), MOSI=_pin(cfg.PIN_TFT_MOSI))
    bus = fourwire.FourWire(
        spi,
        command=_pin(cfg.PIN_TFT_DC),
        chip_select=_pin(cfg.PIN_TFT_CS),
        reset=_pin(cfg.PIN_TFT_RST),
        baudrate=24_000_000,
    )
    return ST7735R(
        bus, width=160, height=128, rotation=90, bgr=True, backlight_pin=_pin(cfg.PIN_TFT_BL)
    )


def _keys(cfg):
    import keypad

    # keypad scans in the background and queues events: no press is lost while the loop is busy
    pins = (_pin(cfg.PIN_BTN_NEXT), _pin(cfg.PIN_BTN_ENTER))
    return keypad.Keys(pins, value_when_pressed=False, pull=True)


def _sd_mounter(cfg):
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

            data = [_pin(n) for n in (cfg.PIN_SD_D0, cfg.PIN_SD_D1, cfg.PIN_SD_D2, cfg.PIN_SD_D3)]
            sd: Any = sdioio.SDCard(
                clock=_pin(cfg.PIN_SD_CLK),
                command=_pin(cfg.PIN_SD_CMD),
                data=data,
                frequency=25_000_000,
            )
        else:
            import sdcardio

            # SPI mode on the same socket wiring: CLK = SCK, CMD = MOSI, D0 = MISO, D3 = CS
            spi = busio.SPI(
                _pin(cfg.PIN_SD_CLK), MOSI=_pin(cfg.PIN_SD_CMD), MISO=_pin(cfg.PIN_SD_D0)
            )
            sd = sdcardio.SDCard(spi, _pin(cfg.PIN_SD_D3))
        state["sd"] = sd
        storage.mount(storage.VfsFat(sd), "/sd")
        try:
            os.mkdir(cfg.LOG_DIR)
        except OSError:
            pass  # exists

    return mount


def reset_reason():
    """Why the board last reset, as text (shown on the status page and screen)."""
    try:
        return str(microcontroller.cpu.reset_reason).split(".")[-1]
    except AttributeError:
        return None


def main():
    """Board entry point: settings -> hardware -> app -> run forever.

    Bad settings never stop the board: they are reported on the display, the serial console and
    the web page, and the firmware runs on with what works (see smartmeter/config.py).
    """
    from smartmeter import build_info

    text, mismatch = app.firmware_version()
    print(
        "smartmeter %s (built for CircuitPython %s, commit %s)"
        % (text, build_info.CIRCUITPYTHON or "any: source", build_info.COMMIT or "-")
    )
    if mismatch:
        print("smartmeter:", mismatch)
    made: list = []
    try:
        hw, firmware = _start(made)
    except MemoryError:
        # Not even the decoder fits: nothing to run. Say so and stay (no reset loop).
        gc.collect()
        hw = made[0] if made else None
        _no_memory(hw)
        # the watchdog may already run (build() starts it): fed here, or it resets the board
        # every WATCHDOG_S and the message above scrolls away in a reset loop
        wd = getattr(hw, "watchdog", None)
        while True:
            if wd is not None:
                wd.feed()
            time.sleep(wd.every_s if wd is not None else 60)
    firmware.state.reset_reason = reset_reason()
    for problem in hw.problems:
        firmware.state.last_errors["hardware"] = problem
        print("hardware:", problem)
    firmware.run()


def _start(made):
    """Settings, hardware, app: (hw, firmware); raises MemoryError when the decoder won't fit
    (``made`` holds the hardware once built, for the message). The settings' reader is held
    here only: ``app.build`` can unload it (``App.drop_settings_code``) once this returns."""
    from smartmeter import config, overrides

    cfg = config.load(os.getenv)
    hw = build(cfg)
    made.append(hw)
    if hw.mount is not None:
        # The web settings page stores its changes on the SD card (CIRCUITPY is read-only to
        # code while USB is connected); they override settings.toml.
        # A file that cannot be read, parsed or is damaged is reported and ignored: the board
        # boots on settings.toml alone (overrides.load never raises for a bad file).
        try:
            hw.mount()
            found = overrides.load(app.device_fs())
            if found.values or found.problems:
                cfg = config.load(os.getenv, found.values)
                cfg.problems.extend(found.problems)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - no card, or anything else: settings.toml alone
            if not isinstance(exc, OSError):
                what = type(exc).__name__
                cfg.problems.append("settings file: %s, settings.toml alone applies" % what)
    hw.fs = app.device_fs()
    config = overrides = None  # noqa: F841 - let go: app.build may unload the settings' reader
    if hw.pool is None:  # no WiFi, so no web settings page: nothing reads settings any more
        app.unload_settings_code()
    return hw, app.build(hw, cfg)


def _no_memory(hw):
    """The words for a heap too small for the decoder, on the console and the display."""
    display = getattr(hw, "display", None)
    if display is not None:
        try:  # the board's terminal shows what is printed from now on
            import displayio

            display.root_group = displayio.CIRCUITPYTHON_TERMINAL
        except Exception:  # noqa: BLE001, S110 - the console has the words
            pass
    print("CSV logging off: not enough memory")
    gc.collect()
    try:
        free = " (%d bytes free)" % gc.mem_free()  # type: ignore[attr-defined]  # CircuitPython's
    except Exception:  # noqa: BLE001 - the figure is only a hint
        free = ""
    print(
        "smartmeter: not enough memory to start the meter decoder%s: use a board with PSRAM" % free
    )
