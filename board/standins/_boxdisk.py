# SPDX-License-Identifier: MIT
"""The box's SD card: a FAT image file on the host, as 512-byte blocks (not a CircuitPython
module; ``sdcardio`` and ``sdioio`` build on it). Boot opens the file before "/" becomes the
CIRCUITPY drive, so ``CONFIG["sd_file"]`` is an open binary file or None (no card).
"""

import _box

BLOCK = 512
_cards = []


class Card:
    """readblocks/writeblocks/count/sync over the image (shared-module/sdcardio/SDCard.c API)."""

    def __init__(self):
        f = _box.CONFIG.get("sd_file")
        if f is None:
            raise OSError("no SD card")
        self._f = f
        f.seek(0, 2)
        self._blocks = f.tell() // BLOCK
        self._deinited = False
        _cards.append(self)

    def _check(self, buf):
        if self._deinited:
            raise ValueError("Object has been deinitialized and can no longer be used.")
        if len(buf) % BLOCK:
            raise ValueError("Buffer length must be a multiple of 512")

    def count(self):
        return self._blocks

    def readblocks(self, start_block, buf):
        self._check(buf)
        if start_block + len(buf) // BLOCK > self._blocks:
            raise OSError(5)  # EIO: past the end of the card
        self._f.seek(start_block * BLOCK)
        n = self._f.readinto(buf)
        if n is None or n < len(buf):
            for i in range(n or 0, len(buf)):
                buf[i] = 0

    def writeblocks(self, start_block, buf):
        self._check(buf)
        if start_block + len(buf) // BLOCK > self._blocks:
            raise OSError(5)
        self._f.seek(start_block * BLOCK)
        self._f.write(buf)

    def sync(self):
        if not self._deinited:
            self._f.flush()

    def deinit(self):
        self.sync()
        self._deinited = True
        if self in _cards:
            _cards.remove(self)


def flush_all():
    for card in _cards:
        card.sync()
