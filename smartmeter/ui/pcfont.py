# SPDX-License-Identifier: MIT
"""The PC's (Blinka's) terminalio font as one strip of glyphs, laid out like the board's font.

Only ``tiletext.glyph_strip`` imports this, and only under Blinka: on a board the font already
is such a strip (in flash), so this code stays out of the board's heap.
"""

import displayio


def glyph_strip(font, cell_w, cell_h):
    """``[bitmap, tile]``: the printable ASCII glyphs of ``font`` side by side in one bitmap of
    ``cell_w`` x ``cell_h`` cells, each at the place in its cell where a label would draw it
    (baseline at the font's ascent), and ``tile(char) -> index`` ("?" for any other)."""
    chars = [chr(c) for c in range(0x20, 0x7F)]
    glyphs = [font.get_glyph(ord(c)) for c in chars]
    ascent = max(g.height + g.dy for g in glyphs)
    strip = displayio.Bitmap(cell_w * len(chars), cell_h, 2)
    for n, g in enumerate(glyphs):
        top = ascent - g.height - g.dy
        for y in range(g.height):
            for x in range(g.width):
                cx, cy = g.dx + x, top + y
                if g.bitmap[x, y] and 0 <= cx < cell_w and 0 <= cy < cell_h:
                    strip[n * cell_w + cx, cy] = 1
    index = {c: n for n, c in enumerate(chars)}
    return [strip, lambda ch: index.get(ch, index["?"])]
