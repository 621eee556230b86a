# SPDX-License-Identifier: MIT
"""What the board says when the firmware cannot start: on the serial console and the TFT.

``code.py`` imports this file only then (when the firmware's .mpy files are for another
CircuitPython version, or not even they fit the heap), so a running board never holds it. It
stays source, as ``code.py`` does: it must load on any CircuitPython version.
"""

# ST7735R power-up (command, length | 0x80 when a delay in ms follows, data, delay): the firmware
# and its display driver cannot be loaded when this file is.
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
