# Stand-in for CircuitPython's terminalio font (6x12 cells) for the memory bench in the VM.
# get_glyph() builds a new Glyph each call, as fontio.BuiltinFont does on the board.
import displayio


class Glyph:
    def __init__(self, bitmap, tile_index, width, height, dx, dy, shift_x, shift_y):
        self.bitmap = bitmap
        self.tile_index = tile_index
        self.width = width
        self.height = height
        self.dx = dx
        self.dy = dy
        self.shift_x = shift_x
        self.shift_y = shift_y


class _Font:
    def __init__(self):
        self.bitmap = displayio.Bitmap(6, 12, 2)  # the board's font bitmap is in flash

    def get_bounding_box(self):
        return (6, 12)

    def get_glyph(self, codepoint):
        return Glyph(self.bitmap, codepoint & 0x7F, 6, 12, 0, 0, 6, 0)

    def load_glyphs(self, codepoints):
        pass


FONT = _Font()
