# SPDX-License-Identifier: MIT
"""``sdcardio`` stand-in: ``SDCard(spi, cs, baudrate=8000000)`` over the box's FAT image.

Imitates adafruit/circuitpython shared-bindings/sdcardio/SDCard.c and
shared-module/sdcardio/SDCard.c: no card gives ``OSError("no SD card")``; ``count()`` in
512-byte blocks, ``readblocks(start, buf)``/``writeblocks(start, buf)`` with buffers a multiple of
512 (ValueError), ``sync()``, ``deinit()``. The card takes the chip-select pin.
"""

import _boxdisk
import microcontroller


class SDCard(_boxdisk.Card):
    def __init__(self, spi, cs, baudrate=8000000):
        microcontroller._claim(cs, "cs")
        try:
            super().__init__()
        except OSError:
            microcontroller._release(cs)
            raise
        self._cs = cs

    def deinit(self):
        super().deinit()
        microcontroller._release(self._cs)
