# Minimal stand-in for CircuitPython's displayio, for the memory bench in the MicroPython VM.
# Only what smartmeter.ui and adafruit_display_text use; nothing is drawn. Each object weighs on
# the VM's heap what the C object weighs on the board's (CircuitPython 9/10, 32-bit, 16-byte GC
# blocks), so label.Label (a TileGrid per character) and bitmap_label.Label (a Bitmap per label)
# are compared fairly. C sizes (struct rounded to 16 bytes, plus separately allocated data):
#   TileGrid 96 (88-byte struct; up to 4 one-byte tile indices live inside it, more are a
#            separate block of width*height bytes)
#   Bitmap   48 + stride*4*height, stride = 32-bit words per row = (width*bits + 31) // 32,
#            bits = 1 for up to 2 values, 2 for 3-4, 4, 8, ... (the pixel rows are padded to
#            whole words: a 13-pixel 1-bit row takes 4 bytes, not 2)
#   Palette  16 + 16 per colour
#   Group    48 + its member list (16 + 4 per slot, at least 4 slots)
# Measured in the VM (200 of each, heap after collection): stand-in TileGrid
# 96 / 96+n, Bitmap 48 + data, Palette 64, Group 80: only Palette(1) and Palette(2) are 32 and
# 16 bytes heavier than C.


class Group:
    # scale is a property so that a subclass (adafruit_display_text's LabelBase) can override
    # it; the constructor must not go through the subclass's setter (the C Group does not).
    hidden = False  # a class attribute until set: one dict slot less, the C struct's size

    def __init__(self, *, scale=1, x=0, y=0):
        self._group_scale = scale
        self.x = x
        self.y = y
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
    # 4 bytes per colour (RGB and a transparency flag) in one bytearray: the C palette's 16
    # bytes per colour entry without a Python list of ints around them
    def __init__(self, color_count, *, dither=False):
        self._c = bytearray(4 * color_count)

    def __len__(self):
        return len(self._c) // 4

    def __getitem__(self, index):
        c = self._c
        i = 4 * index
        return c[i] << 16 | c[i + 1] << 8 | c[i + 2]

    def __setitem__(self, index, value):
        c = self._c
        i = 4 * index
        c[i] = (value >> 16) & 0xFF
        c[i + 1] = (value >> 8) & 0xFF
        c[i + 2] = value & 0xFF

    def make_transparent(self, index):
        self._c[4 * index + 3] = 1

    def make_opaque(self, index):
        self._c[4 * index + 3] = 0

    def is_transparent(self, index):
        return bool(self._c[4 * index + 3])


class Bitmap:
    def __init__(self, width, height, value_count):
        bits = 1
        while (1 << bits) < value_count:
            bits *= 2
        # width and height packed in one int: one attribute less keeps the object at the C
        # struct's 48 bytes; the pixel rows padded to 32-bit words like the C bitmap's
        self._wh = (width << 16) | height
        self._data = bytearray(max(4, (width * bits + 31) // 32 * 4 * height))

    @property
    def width(self):
        return self._wh >> 16

    @property
    def height(self):
        return self._wh & 0xFFFF

    def __setitem__(self, index, value):
        pass

    def __getitem__(self, index):
        return 0

    def fill(self, value):
        pass


def _flag(bit):
    def get(self):
        return bool(self._flags & bit)

    def put(self, value):
        self._flags = (self._flags | bit) if value else (self._flags & ~bit)

    return property(get, put)


class TileGrid:
    # The flags are bits of one int, sizes are bytes of another (like the C struct's fields):
    # an attribute each would make the stand-in heavier than the C object.
    hidden = _flag(1)
    flip_x = _flag(2)
    flip_y = _flag(4)
    transpose_xy = _flag(8)

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
        tw = tile_width or getattr(bitmap, "width", 1)
        th = tile_height or getattr(bitmap, "height", 1)
        self._dims = (width << 24) | (height << 16) | (tw << 8) | th
        self._flags = 0
        # up to 4 tile indices live inside the C struct; more are a block of their own
        n = width * height
        self._tiles = bytearray(n if n > 4 else 0)

    @property
    def width(self):
        return self._dims >> 24

    @property
    def height(self):
        return (self._dims >> 16) & 0xFF

    @property
    def tile_width(self):
        return (self._dims >> 8) & 0xFF

    @property
    def tile_height(self):
        return self._dims & 0xFF

    def __setitem__(self, index, value):
        pass

    def __getitem__(self, index):
        return 0


CIRCUITPYTHON_TERMINAL = Group()


def release_displays():
    pass
