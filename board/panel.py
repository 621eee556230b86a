# SPDX-License-Identifier: MIT
"""The TFT panel of the board in a box (host side, CPython): replays the bytes the display
driver sent over the SPI bus (``board/standins/fourwire.py`` records them) into a model of an
ST7735R controller's memory, and gives the picture a viewer sees.

Only what the wire says counts: the init sequence (SWRESET, SLPOUT, COLMOD, MADCTL, INVON/OFF,
NORON, DISPON), column and row windows (CASET 0x2A, RASET 0x2B, 16-bit start and inclusive
end), memory writes (RAMWR 0x2C, RGB565 high byte first) and MADCTL's MY/MX/MV/BGR bits as the
ST7735R datasheet defines them (address counter mirrored in y/x, rows and columns exchanged,
blue and red swapped). The panel's memory is ``width`` x ``height`` (128 x 160, the 1.8" module
the firmware drives; the controller's 132 x 162 mode is not modelled).

Mounting: the module shows memory row 0 at the bottom and column 0 at the right (so the driver's
"default rotation" MADCTL 0xC0 draws address (0, 0) at the top left of the portrait glass), and
the board holds it landscape, turned a quarter counter-clockwise: :meth:`Panel.landscape` is
the picture the user sees (what ``rotation=90`` in displayio is for).

``python board/panel.py WIRE OUT.png`` writes the last frame of a recording.
"""

import sys

SWRESET = 0x01
SLPOUT = 0x11
NORON = 0x13
INVOFF = 0x20
INVON = 0x21
DISPOFF = 0x28
DISPON = 0x29
CASET = 0x2A
RASET = 0x2B
RAMWR = 0x2C
MADCTL = 0x36
COLMOD = 0x3A


class PanelError(Exception):
    """The wire carried something the controller would not accept (or the model lacks)."""


class Panel:
    """ST7735R memory and registers, fed record by record (see :func:`replay`)."""

    def __init__(self, width=128, height=160):
        self.width = width
        self.height = height
        self.ram = [0] * (width * height)  # RGB565 as stored
        self.commands = []  # every command byte in order
        self.frames = {}  # marker name -> landscape picture (RGB bytes) at that point
        self.backlight = None  # PWM duty 0..255 of the last change, None if never set
        self.resets = 0
        self.ram_writes = 0
        self.pixels_written = 0
        self._reset_registers()
        self._cmd = None
        self._args = bytearray()

    def _reset_registers(self):
        self.madctl = 0x00
        self.colmod = 0x06  # 18-bit after reset
        self.inverted = False
        self.sleeping = True
        self.display_on = False
        self.xs, self.xe = 0, self.width - 1
        self.ys, self.ye = 0, self.height - 1
        self._x = self._y = 0
        self._pending = None  # odd byte of a pixel

    # -- records -------------------------------------------------------------------------

    def command(self, cmd):
        self._finish()
        self.commands.append(cmd)
        self._cmd = cmd
        self._args = bytearray()
        if cmd == SWRESET:
            self._reset_registers()
        elif cmd == SLPOUT:
            self.sleeping = False
        elif cmd == INVON:
            self.inverted = True
        elif cmd == INVOFF:
            self.inverted = False
        elif cmd == DISPON:
            self.display_on = True
        elif cmd == DISPOFF:
            self.display_on = False
        elif cmd == RAMWR:
            if self.colmod & 0x07 != 0x05:
                raise PanelError("RAMWR with COLMOD 0x%02x (only 16-bit is modelled)" % self.colmod)
            self.ram_writes += 1
            self._x, self._y = self.xs, self.ys
            self._pending = None

    def data(self, data):
        if self._cmd == RAMWR:
            self._pixels(data)
        else:
            self._args += data

    def _finish(self):
        """Apply the parameters of the command before the next one."""
        cmd, a = self._cmd, self._args
        if cmd == CASET and len(a) >= 4:
            self.xs, self.xe = (a[0] << 8) | a[1], (a[2] << 8) | a[3]
        elif cmd == RASET and len(a) >= 4:
            self.ys, self.ye = (a[0] << 8) | a[1], (a[2] << 8) | a[3]
        elif cmd == MADCTL and a:
            self.madctl = a[0]
        elif cmd == COLMOD and a:
            self.colmod = a[0]
        self._cmd = None
        self._args = bytearray()

    def _pixels(self, data):
        i = 0
        n = len(data)
        if self._pending is not None and n:
            self._store((self._pending << 8) | data[0])
            self._pending = None
            i = 1
        while i + 1 < n:
            self._store((data[i] << 8) | data[i + 1])
            i += 2
        if i < n:
            self._pending = data[i]

    def _store(self, value):
        c, r = self._x, self._y
        mv = self.madctl & 0x20
        aw, ah = (self.height, self.width) if mv else (self.width, self.height)
        if c >= aw or r >= ah:
            raise PanelError("pixel at address (%d, %d) outside the %dx%d memory" % (c, r, aw, ah))
        if self.madctl & 0x40:  # MX: column address order
            c = aw - 1 - c
        if self.madctl & 0x80:  # MY: row address order
            r = ah - 1 - r
        if mv:
            c, r = r, c
        self.ram[r * self.width + c] = value
        self.pixels_written += 1
        # the address counter: columns first, then the next row, wrapping to the window start
        self._x += 1
        if self._x > self.xe:
            self._x = self.xs
            self._y += 1
            if self._y > self.ye:
                self._y = self.ys

    # -- the picture ---------------------------------------------------------------------

    def _rgb(self, v):
        r = (v >> 11) & 0x1F
        g = (v >> 5) & 0x3F
        b = v & 0x1F
        if self.madctl & 0x08:  # BGR: the controller drives the first field as blue
            r, b = b, r
        if self.inverted:
            r, g, b = 31 - r, 63 - g, 31 - b
        return (r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)

    def portrait(self):
        """RGB bytes of the portrait glass, ``width`` x ``height``, top left first."""
        w, h = self.width, self.height
        out = bytearray(3 * w * h)
        o = 0
        for vy in range(h):
            row = (h - 1 - vy) * w  # row 0 at the bottom
            for vx in range(w):
                out[o : o + 3] = bytes(self._rgb(self.ram[row + w - 1 - vx]))  # column 0 right
                o += 3
        return bytes(out)

    def landscape(self):
        """RGB bytes of the picture the user sees, ``height`` x ``width`` (160 x 128)."""
        w, h = self.width, self.height
        p = self.portrait()
        out = bytearray(3 * w * h)
        o = 0
        for ly in range(w):
            for lx in range(h):
                i = 3 * (lx * w + (w - 1 - ly))  # portrait (w-1-ly, lx)
                out[o : o + 3] = p[i : i + 3]
                o += 3
        return bytes(out)

    def image(self, rgb=None):
        """A Pillow image of :meth:`landscape` (or of ``rgb``, landscape bytes)."""
        from PIL import Image

        return Image.frombytes("RGB", (self.height, self.width), rgb or self.landscape())


def replay(wire, panel=None):
    """Feed a recording (bytes or a path) into ``panel`` (a new 128x160 Panel by default);
    at each marker the landscape picture is kept in ``panel.frames[name]``."""
    if isinstance(wire, str):
        with open(wire, "rb") as f:
            wire = f.read()
    p = panel or Panel()
    i = 0
    n = len(wire)
    while i < n:
        tag = wire[i]
        if tag == 0x43:  # C
            p.command(wire[i + 1])
            i += 2
        elif tag == 0x44:  # D
            size = (wire[i + 1] << 8) | wire[i + 2]
            p.data(wire[i + 3 : i + 3 + size])
            i += 3 + size
        elif tag == 0x52:  # R: reset pin pulse
            p.resets += 1
            p._reset_registers()
            i += 1
        elif tag == 0x4C:  # L: backlight duty
            p.backlight = wire[i + 1]
            i += 2
        elif tag == 0x4D:  # M: marker
            size = (wire[i + 1] << 8) | wire[i + 2]
            p._finish()
            p.frames[wire[i + 3 : i + 3 + size].decode()] = p.landscape()
            i += 3 + size
        else:
            raise PanelError("unknown record 0x%02x at offset %d" % (tag, i))
    p._finish()
    return p


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python board/panel.py WIRE OUT.png")
        return 2
    p = replay(args[0])
    p.image().save(args[1])
    print(
        "%s: %d commands, %d RAM writes, %d pixels, MADCTL 0x%02x, display %s, backlight %s"
        % (
            args[1],
            len(p.commands),
            p.ram_writes,
            p.pixels_written,
            p.madctl,
            "on" if p.display_on else "off",
            p.backlight,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
