# SPDX-License-Identifier: MIT
"""Boot on the board (device only): settings -> hardware -> app, then this module goes.

:func:`main` reads the settings, builds the hardware object from the pin names in settings.toml
(each part optional: a missing display, SD card, sensor or WiFi is logged and left as None, and
the app runs on with what is there), assembles the app and returns it; ``code.py`` runs it.
What the running firmware calls on the hardware lives in ``smartmeter/boardio.py``: this
module takes itself out of ``sys.modules`` before it returns, so its boot code leaves the heap
(2.5 KB in the CircuitPython VM). Nothing here is imported on the PC (``sim/`` builds the PC
version of the same object).
"""

import gc
import os
import time

import busio
import microcontroller

from smartmeter import app
from smartmeter.boardio import (
    Clock,
    Hardware,
    LineMemory,
    MeterLine,
    Radio,
    Watchdog,
    pin,
    sd_mounter,
)


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
    if hw.uart is None and hw.problems[-1].endswith("not enough memory"):
        # no heap for the meter line's buffer: nothing to decode or log, and a firmware that
        # runs on without it would never say so (main() says "CSV logging off")
        raise MemoryError
    if hw.uart is not None:
        hw.set_line = line.set_line
        hw.meter_tx = line.tx is not None
        hw.line_memory = LineMemory()
    hw.display = attempt("display", lambda: _display(cfg))
    hw.keys = attempt("buttons", lambda: _keys(cfg))
    hw.i2c = attempt("I2C", lambda: busio.I2C(pin(cfg.PIN_I2C_SCL), pin(cfg.PIN_I2C_SDA)))
    hw.log_dir = cfg.LOG_DIR
    if cfg.SD_MODE != "none":
        hw.mount = sd_mounter(cfg)
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
    spi = busio.SPI(clock=pin(cfg.PIN_TFT_SCK), MOSI=pin(cfg.PIN_TFT_MOSI))
    bus = fourwire.FourWire(
        spi,
        command=pin(cfg.PIN_TFT_DC),
        chip_select=pin(cfg.PIN_TFT_CS),
        reset=pin(cfg.PIN_TFT_RST),
        baudrate=24_000_000,
    )
    return ST7735R(
        bus, width=160, height=128, rotation=90, bgr=True, backlight_pin=pin(cfg.PIN_TFT_BL)
    )


def _keys(cfg):
    import keypad

    # keypad scans in the background and queues events: no press is lost while the loop is busy
    pins = (pin(cfg.PIN_BTN_NEXT), pin(cfg.PIN_BTN_ENTER))
    return keypad.Keys(pins, value_when_pressed=False, pull=True)


def reset_reason():
    """Why the board last reset, as text (shown on the status page and screen)."""
    try:
        return str(microcontroller.cpu.reset_reason).split(".")[-1]
    except AttributeError:
        return None


def main():
    """Board entry point: settings -> hardware -> app; returns the app (``code.py`` runs it).

    Bad settings never stop the board: they are reported on the display, the serial console and
    the web page, and the firmware runs on with what works (see smartmeter/config.py). When not
    even the decoder fits the heap, this says so and never returns.
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
    app.unload_modules((__name__,))  # boot done: this module's code goes when code.py lets go
    return firmware


def _start(made):
    """Settings, hardware, app: (hw, firmware); raises MemoryError when the decoder won't fit
    (``made`` holds the hardware once built, for the message)."""
    hw, cfg = _read_settings(made)
    # The settings' reader is gone from this frame now (with every object of its modules, such
    # as the override file's result): without WiFi (no web settings page) nothing reads
    # settings any more, so it leaves the heap before the parts load into its room.
    if hw.pool is None:
        app.unload_settings_code()
    return hw, app.build(hw, cfg)


def _read_settings(made):
    """(hw, cfg): settings.toml and the web page's override file, the hardware they name."""
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
    return hw, cfg


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
