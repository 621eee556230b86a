# SPDX-License-Identifier: MIT
"""One line of terminalio text as one TileGrid over the font's glyphs: the lightest label.

The built-in font of CircuitPython is one bitmap (in flash) with every glyph side by side, 6x12
pixels each, the same cells the board's serial terminal draws with. A :class:`TileText` is a
Group (its ``scale`` enlarges the text) holding one TileGrid whose tiles are those glyphs: a
character is one byte (its tile index), changing the text sets tile indices in C, and no pixel
is copied into the heap; the labels of one colour share one Palette. adafruit_display_text's
labels build a Python object of about 40 attributes around the same text (``label.Label``: plus
a TileGrid per character; ``bitmap_label.Label``: plus a Bitmap of the text's pixels) - 3 to 4
times the heap (README, "Memory").

On the PC (Blinka) the font is a set of separate glyph bitmaps: :func:`glyph_strip` then has
``pcfont.py`` copy them once into one bitmap laid out like the board's, so the screens draw the
same pixels.

Only what the screens use: ``text``, ``color``, ``anchored_position`` (x, y of the anchor),
``bounding_box`` and the Group's ``x``, ``y``, ``scale``, ``hidden``. The anchor is the top
left, top centre or top right of the text (``anchor_x`` 0, 0.5 or 1.0).
"""

import displayio
import terminalio

_CELL_W = 6  # terminalio cells
_CELL_H = 12
_STRIP = []  # [bitmap, {codepoint: tile}] once made; [] before
_PALETTES = {}  # colour -> Palette(2) (transparent, colour), shared by every label of that colour


def glyph_strip():
    """(bitmap with the glyphs side by side, ``tile(char) -> index``) of terminalio.FONT."""
    if _STRIP:
        return _STRIP[0], _STRIP[1]
    font = terminalio.FONT
    if isinstance(getattr(font, "bitmap", None), displayio.Bitmap):
        # CircuitPython: the font is a strip already (Blinka's ``bitmap`` is the Bitmap class).
        # Its cells are 6x12 on every board we know; take them from the font all the same, so
        # a build with another terminal font still slices its glyphs right.
        global _CELL_W, _CELL_H
        box = font.get_bounding_box()
        _CELL_W, _CELL_H = box[0], box[1]
        _STRIP.append(font.bitmap)
        _STRIP.append(_board_tile)
        return _STRIP[0], _STRIP[1]
    # Blinka (the PC): one bitmap per glyph, copied into a strip by a module of its own, so
    # that its code never takes the board's heap
    from .pcfont import glyph_strip as pc_strip

    _STRIP.extend(pc_strip(font, _CELL_W, _CELL_H))
    return _STRIP[0], _STRIP[1]


def _palette(color):
    """The shared palette of ``color``: a label's colour is which palette its grid uses, so a
    screen holds one Palette per colour, not one per label."""
    pal = _PALETTES.get(color)
    if pal is None:
        pal = _PALETTES[color] = displayio.Palette(2)
        pal.make_transparent(0)
        pal[1] = color
    return pal


def _board_tile(ch):
    glyph = terminalio.FONT.get_glyph(ord(ch))
    if glyph is None:
        glyph = terminalio.FONT.get_glyph(0x3F)  # "?"
    return glyph.tile_index


class TileText(displayio.Group):
    """A line of text whose anchor (top left/centre/right, ``anchor_x`` 0/0.5/1) is at
    ``anchored_position``; ``scale`` 1 draws 6x12 px per character, 2 draws 12x24."""

    def __init__(self, text="", color=0x000000, scale=1, anchor_x=0.0, anchored_position=(0, 0)):
        super().__init__(scale=scale)
        glyph_strip()  # made once, shared by every TileText
        self._ax = anchor_x
        self._pos = anchored_position
        self._text = ""
        self._grid = None  # its palette is the colour (no attribute of its own: heap per label)
        self._make_grid(len(text), _palette(color))
        self.text = text
        self._place()  # also for "" (the setter returns early when nothing changes)

    def _make_grid(self, n, palette):
        """A blank grid for ``n`` characters and a few more (room to grow without a new grid)."""
        grid = displayio.TileGrid(
            _STRIP[0],
            pixel_shader=palette,
            width=max(4, (n + 3) & ~3),
            height=1,
            tile_width=_CELL_W,
            tile_height=_CELL_H,
            default_tile=_STRIP[1](" "),
        )
        if self._grid is None:
            self.append(grid)
        else:
            self[0] = grid
        self._grid = grid

    @property
    def text(self):
        return self._text

    @text.setter
    def text(self, text):
        if text == self._text:
            return
        n = len(text)
        grid = self._grid
        old = self._text
        if n > grid.width:
            self._make_grid(n, grid.pixel_shader)
            grid = self._grid
            old = ""  # a new grid is blank
        tile = _STRIP[1]
        for i in range(grid.width):
            ch = text[i] if i < n else " "
            if i < len(old) and old[i] == ch or i >= n and i >= len(old):
                continue  # unchanged tile (blank stays blank)
            grid[i] = tile(ch)
        self._text = text
        self._place()

    def _place(self):
        x, y = self._pos
        width = len(self._text) * _CELL_W * self.scale
        self.x = int(x - round(self._ax * width))
        self.y = int(y)

    @property
    def color(self):
        return self._grid.pixel_shader[1]

    @color.setter
    def color(self, color):
        self._grid.pixel_shader = _palette(color)

    @property
    def anchored_position(self):
        return self._pos

    @anchored_position.setter
    def anchored_position(self, pos):
        self._pos = pos
        self._place()

    @property
    def bounding_box(self):
        """(x, y, width, height) of the text in unscaled pixels, relative to ``x``, ``y``."""
        return (0, 0, len(self._text) * _CELL_W, _CELL_H)
