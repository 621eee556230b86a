# SPDX-License-Identifier: MIT
"""The real TFT stack on a PC: Blinka's displayio, FourWire and the adafruit_st7735r driver,
on Blinka's OS-agnostic fake board, read back into PNG files.

``make_png_display()`` returns ``(display, snapshot)``. The display is an ``ST7735R`` at 160x128
(rotation 0 here; the device uses rotation=90 on the portrait panel, which gives the same
160x128 landscape frame) with ``auto_refresh=False``. ``snapshot(path)`` reads every row with
``display.fill_row`` (RGB565, high byte first) and writes a PNG; it returns the Pillow image.
``snapshot.stats["spi_writes"]`` counts SPI writes (tests: none while the backlight is off).
"""

import os

os.environ.setdefault("BLINKA_OS_AGNOSTIC", "1")  # before board: a fake board with pins

WIDTH = 160
HEIGHT = 128


def make_png_display(width=WIDTH, height=HEIGHT):
    """Build the display and a ``snapshot(path=None) -> PIL.Image`` function."""
    import adafruit_st7735r
    import board
    import busio
    import displayio
    import fourwire
    from PIL import Image

    displayio.release_displays()
    spi = busio.SPI(board.SCK, board.MOSI)
    stats = {"spi_writes": 0, "spi_bytes": 0}
    write = spi.write

    def counting_write(buf, *args, **kwargs):
        stats["spi_writes"] += 1
        stats["spi_bytes"] += len(buf)
        return write(buf, *args, **kwargs)

    spi.write = counting_write
    # No chip select here: Blinka toggles CS with a 1 us sleep per command (0.5 ms on a PC),
    # which would dominate the measured render time. The device wiring has CS.
    bus = fourwire.FourWire(spi, command=board.Dx_OUTPUT, chip_select=None, reset=None)
    display = adafruit_st7735r.ST7735R(
        bus, width=width, height=height, rotation=0, bgr=True, auto_refresh=False
    )

    def snapshot(path=None):
        """The current frame as an RGB Pillow image, also written to ``path`` when given."""
        raw = bytearray(width * height * 3)
        buf = bytearray(width * 2)
        o = 0
        for y in range(height):
            # Blinka returns a new buffer; CircuitPython fills ``buf``
            row = bytes(display.fill_row(y, buf))
            for x in range(width):
                v = (row[2 * x] << 8) | row[2 * x + 1]
                r = (v >> 11) & 0x1F
                g = (v >> 5) & 0x3F
                b = v & 0x1F
                raw[o] = (r << 3) | (r >> 2)
                raw[o + 1] = (g << 2) | (g >> 4)
                raw[o + 2] = (b << 3) | (b >> 2)
                o += 3
        img = Image.frombytes("RGB", (width, height), bytes(raw))
        if path:
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            img.save(path)
        return img

    snapshot.stats = stats
    return display, snapshot
