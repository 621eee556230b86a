# Minimal stand-in for CircuitPython's displayio, for the memory bench in the MicroPython VM.
# Only what smartmeter.ui and adafruit_display_text use. Each object holds what the C object
# holds on the board's heap (a bitmap's pixels, a tile grid's tile indices, palette colours),
# so heap figures stay close; nothing is drawn.


class Group:
    # scale is a property so that a subclass (adafruit_display_text's LabelBase) can override
    # it; the constructor must not go through the subclass's setter (the C Group does not).
    def __init__(self, *, scale=1, x=0, y=0):
        self._group_scale = scale
        self.x = x
        self.y = y
        self.hidden = False
        self._items = []

    @property
    def scale(self):
        return self._group_scale

    @scale.setter
    def scale(self, value):
        self._group_scale = value

    def append(self, item):
        self._items.append(item)

    def insert(self, index, item):
        self._items.insert(index, item)

    def pop(self, index=-1):
        return self._items.pop(index)

    def remove(self, item):
        self._items.remove(item)

    def index(self, item):
        return self._items.index(item)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, index):
        return self._items[index]

    def __setitem__(self, index, item):
        self._items[index] = item


class Palette:
    def __init__(self, color_count, *, dither=False):
        self._colors = [0] * color_count
        self._transparent = bytearray(color_count)

    def __len__(self):
        return len(self._colors)

    def __getitem__(self, index):
        return self._colors[index]

    def __setitem__(self, index, value):
        self._colors[index] = value

    def make_transparent(self, index):
        self._transparent[index] = 1

    def make_opaque(self, index):
        self._transparent[index] = 0

    def is_transparent(self, index):
        return bool(self._transparent[index])


class Bitmap:
    def __init__(self, width, height, value_count):
        self.width = width
        self.height = height
        bits = 1
        while (1 << bits) < value_count:
            bits *= 2
        self._data = bytearray(max(4, (width * height * bits + 31) // 32 * 4))

    def __setitem__(self, index, value):
        pass

    def __getitem__(self, index):
        return 0

    def fill(self, value):
        pass


class TileGrid:
    def __init__(
        self,
        bitmap,
        *,
        pixel_shader,
        width=1,
        height=1,
        tile_width=None,
        tile_height=None,
        default_tile=0,
        x=0,
        y=0,
    ):
        self.bitmap = bitmap
        self.pixel_shader = pixel_shader
        self.x = x
        self.y = y
        self.hidden = False
        self.tile_width = tile_width or getattr(bitmap, "width", 1)
        self.tile_height = tile_height or getattr(bitmap, "height", 1)
        self._tiles = bytearray(width * height)

    def __setitem__(self, index, value):
        pass

    def __getitem__(self, index):
        return 0


CIRCUITPYTHON_TERMINAL = Group()


def release_displays():
    pass
