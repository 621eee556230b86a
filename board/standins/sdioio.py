# SPDX-License-Identifier: MIT
"""``sdioio`` stand-in: ``SDCard(clock, command, data, frequency)`` over the box's FAT image.

Imitates adafruit/circuitpython shared-bindings/sdioio/SDCard.c (ESP32-S3:
ports/espressif/common-hal/sdioio/SDCard.c): 1 or 4 data pins (ValueError otherwise), no card
gives OSError, the block API as ``sdcardio`` (count, readblocks, writeblocks, deinit).
"""

import _boxdisk
import microcontroller


class SDCard(_boxdisk.Card):
    def __init__(self, clock, command, data, frequency):
        if len(data) not in (1, 4):
            raise ValueError("Number of data_pins must be 1 or 4")
        pins = [clock, command] + list(data)
        claimed = []
        try:
            for p in pins:
                claimed.append(microcontroller._claim(p))
            super().__init__()
        except (OSError, ValueError):
            for p in claimed:
                microcontroller._release(p)
            raise
        self._pins = pins
        self.frequency = frequency
        self.width = len(data)

    def deinit(self):
        super().deinit()
        for p in self._pins:
            microcontroller._release(p)
