# SPDX-License-Identifier: MIT
"""Board entry point: :func:`smartmeter.device.main` boots and returns the firmware, this runs it.

In a release zip the firmware is compiled to .mpy for one CircuitPython major version and
``make release`` stamps that version into ``BUILT_FOR`` below (this file stays source: it must
load on any version). When the board runs another version, importing the firmware raises
ValueError ("incompatible .mpy file"): this file catches it and says on the serial console and
the display which version the release is for, which the board runs, and what to download.
"""

import sys

BUILT_FOR = None  # make release writes the CircuitPython major version here ("10")

# ST7735R power-up (command, length | 0x80 when a delay in ms follows, data, delay): only for
# the message above, when the firmware and its display driver cannot be loaded.
_TFT_INIT = (
    b"\x01\x80\x96"  # software reset, 150 ms
    b"\x11\x80\xff"  # out of sleep, 255 ms
    b"\x3a\x01\x05"  # 16-bit colour
    b"\x36\x01\xc0"  # memory access order (as the wiring in settings.toml.example)
    b"\x29\x80\x64"  # display on, 100 ms
)


def mismatch_text(built_for, running, detail):
    """The plain-words message for an .mpy the board cannot load."""
    if built_for and running.split(".")[0] != built_for:
        return (
            "This release is for CircuitPython %s, the board runs %s: download the matching zip"
            " (smartmeter-...-circuitpython-%s.zip) or install CircuitPython %s.x on the board."
            % (built_for, running, running.split(".")[0], built_for)
        )
    return (
        "The firmware files do not load on CircuitPython %s (%s): copy the release zip for"
        " this version onto the board again." % (running, detail)
    )


def _pin(board, name, default):
    import os

    value = os.getenv(name, default)
    return getattr(board, str(value)) if value else None


def show(text):
    """Print ``text`` and show it on the TFT (pins from settings.toml) through the terminal."""
    print(text)
    try:
        import board
        import busdisplay
        import busio
        import displayio
        import fourwire

        displayio.release_displays()
        spi = busio.SPI(
            clock=_pin(board, "PIN_TFT_SCK", "IO12"), MOSI=_pin(board, "PIN_TFT_MOSI", "IO11")
        )
        bus = fourwire.FourWire(
            spi,
            command=_pin(board, "PIN_TFT_DC", "IO9"),
            chip_select=_pin(board, "PIN_TFT_CS", "IO10"),
            reset=_pin(board, "PIN_TFT_RST", "IO13"),
        )
        display = busdisplay.BusDisplay(
            bus,
            _TFT_INIT,
            width=160,
            height=128,
            rotation=90,
            backlight_pin=_pin(board, "PIN_TFT_BL", "IO14"),
        )
        display.root_group = displayio.CIRCUITPYTHON_TERMINAL
        print(text)  # the terminal now shows on the display too
    except Exception as exc:  # noqa: BLE001 - no display: the console has the message
        print("(display: %s)" % exc)


def start(impl=sys.implementation):
    """Import and run the firmware; report an .mpy the board cannot load in plain words."""
    try:
        from smartmeter import device
    except MemoryError:
        return _no_memory()
    except ValueError as exc:
        if ".mpy" not in str(exc):
            raise
        running = "%d.%d.%d" % tuple(impl.version[:3])
        show(mismatch_text(BUILT_FOR, running, str(exc)))
        return False
    try:
        firmware = device.main()
    except MemoryError:  # its first imports did not fit (later ones are handled in there)
        return _no_memory()
    del device  # the boot code leaves the heap (main() took it out of sys.modules)
    firmware.run()
    return True


def _no_memory():
    """The firmware's own modules do not fit the heap: nothing can run, say so."""
    sys.modules.pop("smartmeter.device", None)
    import gc

    gc.collect()
    show(
        "CSV logging off: not enough memory\n"
        "smartmeter: not enough memory to load the firmware: use a board with PSRAM"
    )
    return False


# CircuitPython runs this file; on a PC the name "code" belongs to the standard library (pdb
# imports it), so importing this file there must do nothing.
if sys.implementation.name == "circuitpython":
    if not start():
        import time

        while True:  # keep the message on the display; the serial console stays usable
            time.sleep(60)
