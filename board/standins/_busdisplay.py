# SPDX-License-Identifier: MIT
"""The implementation of the ``busdisplay`` stand-in (``busdisplay.py`` imports it and measures
its heap; a board in a box, runs inside the VM).

Imitates ``busdisplay.BusDisplay`` as defined in adafruit/circuitpython
``shared-bindings/busdisplay/BusDisplay.c`` (arguments, properties, errors) and
``shared-module/busdisplay/BusDisplay.c`` with ``shared-module/displayio/display_core.c`` and
``bus_core.c`` (what goes over the bus):

- the constructor sends the init sequence (command, count byte with bit 7 = a delay follows,
  parameters, delay in ms, 255 = 500 ms; 10 ms after commands without one) and waits the delays;
- ``rotation`` is displayio's software transform (0/90/180/270; 90 and 270 swap width and
  height of the panel's memory window), the panel's own MADCTL stays as the driver set it;
- a refresh fills the physical area in sub-rectangles of at most
  ``CIRCUITPY_DISPLAY_AREA_BUFFER_SIZE`` (512) bytes, each sent as column window
  (``set_column_command``, 16-bit big-endian start and inclusive end plus ``colstart``; one byte
  each with ``single_byte_bounds``), row window (``set_row_command``, plus ``rowstart``),
  ``write_ram_command`` and the pixels in RGB565, high byte first (``reverse_bytes_in_word``);
- the first refresh after ``root_group`` changes sends the whole area; later ones send what
  changed. The board tracks dirty areas per TileGrid; the VM's displayio cannot tell Python
  which, so this stand-in renders each sub-rectangle and sends it when its CRC changed: fewer
  bytes than the board may send, the same picture.

The pixels come from the VM's real displayio objects (Group, TileGrid, Bitmap, Palette,
ColorConverter are CircuitPython's C code there), looked up here in Python the way
``displayio_group_fill_area`` / ``displayio_tilegrid_fill_area`` / vectorio's fill_area do:
the last member of a group is on top, hidden groups and layers are skipped, a Group's ``scale``
multiplies its children's positions and pixel size (vectorio shapes: positions only), palette
colours marked transparent let the layer below through, and uncovered pixels are black.
TileGrid ``flip_x``/``flip_y``/``transpose_xy`` are applied to the whole grid as the docs
describe (our firmware uses none; unverified against a board). Not rendered: vectorio Circle and
Polygon, TilePaletteMapper, OnDiskBitmap, colour depths other than 16.

The VM never refreshes a display by itself (no background tasks): ``refresh()`` renders, and
:func:`background` does what the board's background task does for ``auto_refresh`` (the box
calls it from its clock). :data:`RENDER` = False only counts frames (benchmarks: on a board the
rendering is C in the background, not Python in the loop).

On a board the display lives in a static slot (``allocate_display_or_raise()``), not on the GC
heap, and renders from the C stack; here rendering allocates nothing that lives past a refresh
(garbage only: the CRC of each sub-rectangle is a long int, about 4 KB per refresh in all),
and :func:`heap_bytes` is what this module, ``fourwire`` and their live objects hold (about
15 KB, measured by tests/host/test_board_display.py), so memory figures can take it out.
"""

import array
import gc
import time

import _fourwire as fourwire
import displayio

try:
    from binascii import crc32 as _crc32
except ImportError:  # pragma: no cover - the VM has binascii
    from zlib import crc32 as _crc32

try:
    import vectorio

    _Rectangle = vectorio.Rectangle
except ImportError:  # pragma: no cover
    _Rectangle = None

INIT_DELAYS = True  # wait the init sequence's delays (about 1 s for the ST7735R) as a board does
RENDER = True  # False: refresh() counts frames only
_AREA_BUFFER = 512  # CIRCUITPY_DISPLAY_AREA_BUFFER_SIZE (py/circuitpy_mpconfig.h), bytes
_LUT = 16  # palette entries looked up once per layer; larger palettes per pixel
_displays = []
_heap = [0, 0]  # [module import bytes, bytes held by live BusDisplay objects]


def heap_bytes():
    """Bytes of VM heap held by the display stand-ins (this module, ``fourwire`` and their live
    objects). On a board all of it is C in static memory: subtract it from heap figures."""
    return _heap[0] + _heap[1] + fourwire.heap_bytes()


def release_displays():
    """What ``displayio.release_displays()`` does (the VM's version is C and cannot reach these
    stand-ins, so the box calls this one): displays give up their root group, buses close."""
    for d in _displays:
        d._release()
    del _displays[:]
    _heap[1] = 0
    fourwire.release_displays()


def background():
    """The board's background task for displays: refresh those with ``auto_refresh`` whose
    frame time (1/native_frames_per_second) has passed."""
    for d in _displays:
        if d._auto and d._ms() - d._last_refresh > d._ms_per_frame:
            d._refresh()


try:
    import _box

    _ns = _box.ns  # the box's clock (may run faster than the host's)
except ImportError:
    _ns = time.monotonic_ns


def _ms_now():
    return _ns() // 1000000


class BusDisplay:
    """Manage updating a display over a display bus (stand-in, see the module docstring)."""

    def __init__(
        self,
        display_bus,
        init_sequence,
        *,
        width,
        height,
        colstart=0,
        rowstart=0,
        rotation=0,
        color_depth=16,
        grayscale=False,
        pixels_in_byte_share_row=True,
        bytes_per_cell=1,
        reverse_pixels_in_byte=False,
        reverse_bytes_in_word=True,
        set_column_command=0x2A,
        set_row_command=0x2B,
        write_ram_command=0x2C,
        backlight_pin=None,
        brightness_command=None,
        brightness=1.0,
        single_byte_bounds=False,
        data_as_commands=False,
        auto_refresh=True,
        native_frames_per_second=60,
        backlight_on_high=True,
        SH1107_addressing=False,  # noqa: N803 - CircuitPython's keyword
        backlight_pwm_frequency=50000,
    ):
        gc.collect()
        start = gc.mem_alloc()
        init = memoryview(init_sequence)  # TypeError without the buffer protocol, as in C
        brightness = float(brightness)
        if rotation % 90 != 0:
            raise ValueError("Display rotation must be in 90 degree increments")
        if SH1107_addressing and color_depth != 1:
            raise ValueError("color_depth must be 1 when SH1107_addressing is True")
        if not isinstance(display_bus, fourwire.FourWire):
            raise ValueError("Unsupported display bus type")
        if color_depth != 16 or grayscale:
            raise NotImplementedError("board in a box: only 16-bit colour is rendered")
        if _displays:
            raise RuntimeError("Too many displays")
        self._bus = display_bus
        self._auto = False  # off while the init sequence runs (as the board does)
        self._width = width
        self._height = height
        self._colstart = colstart
        self._rowstart = rowstart
        self._ram_small = single_byte_bounds  # ram_width 0xff: one byte per bound
        self._swap = reverse_bytes_in_word
        self._col_cmd = set_column_command
        self._row_cmd = set_row_command
        self._ram_cmd = write_ram_command
        self._data_as_commands = data_as_commands
        self._brightness_cmd = brightness_command
        self._on_high = backlight_on_high
        fourwire._claim(backlight_pin, "backlight_pin")  # validate_obj_is_free_pin_or_none
        self._backlight = backlight_pin is not None
        self._backlight_pin = backlight_pin
        self._brightness = 0.0  # the static slot starts zeroed
        self._ms_per_frame = 1000 // native_frames_per_second
        self._last_refresh = 0
        self._last_call = 0
        self._first_manual = not auto_refresh
        self._full = True
        self._root = None
        self._holder = displayio.Group()  # marks the root as "in a group", as the board does
        self._win = bytearray(4)
        self._px = array.array("H", bytes(_AREA_BUFFER))  # the C stack buffer of _refresh_area
        self._lut = array.array("i", bytes(4 * _LUT))
        self._crc = None  # array of one CRC per sub-rectangle, made with the geometry
        self.frames = 0  # refreshes that ran (tests and the box read these)
        self.areas_sent = 0
        self._rotation = 0
        self._lx0 = self._ly0 = self._lx1 = self._ly1 = 0  # logical rectangle being rendered
        self._c0 = self._cx = self._cy = 0  # buffer offset of logical (x, y): c0 + cx*x + cy*y
        self._set_rotation(rotation, False)
        self._send_init(init)
        self._set_brightness(brightness)
        term = getattr(displayio, "CIRCUITPYTHON_TERMINAL", None)
        if term is not None:
            try:
                self.root_group = term
            except ValueError:  # already shown elsewhere: the board then shows nothing
                pass
        self._auto = auto_refresh
        self._first_manual = not auto_refresh
        _displays.append(self)
        gc.collect()
        _heap[1] += gc.mem_alloc() - start

    # -- properties of the binding --------------------------------------------------------

    @property
    def auto_refresh(self):
        """True when the display is refreshed automatically."""
        return self._auto

    @auto_refresh.setter
    def auto_refresh(self, value):
        self._first_manual = not value
        self._auto = bool(value)

    @property
    def brightness(self):
        """0.0 (off) .. 1.0; RuntimeError when the display has no way to set it."""
        if self._brightness < 0:
            raise RuntimeError("Brightness not adjustable")
        return self._brightness

    @brightness.setter
    def brightness(self, value):
        value = float(value)
        if value < 0 or value > 1.0:
            raise ValueError("brightness must be 0-1")
        if not self._set_brightness(value):
            raise RuntimeError("Brightness not adjustable")

    @property
    def width(self):
        return self._width

    @property
    def height(self):
        return self._height

    @property
    def rotation(self):
        return self._rotation

    @rotation.setter
    def rotation(self, value):
        self._set_rotation(int(value), True)

    @property
    def bus(self):
        return self._bus

    @property
    def root_group(self):
        """The group shown (``displayio.CIRCUITPYTHON_TERMINAL`` until code sets one), or None."""
        return self._root

    @root_group.setter
    def root_group(self, group):
        if group is self._root:
            return
        holder = self._holder
        if group is not None:
            if not isinstance(group, displayio.Group):
                raise TypeError("root_group must be of type Group")
            try:
                holder.append(group)
            except ValueError:
                raise ValueError("Group already used") from None
        if self._root is not None:
            holder.remove(self._root)
        self._root = group
        self._full = True

    def show(self, group):
        raise AttributeError(".show(x) removed. Use .root_group = x")

    def refresh(self, *, target_frames_per_second=None, minimum_frames_per_second=0):
        """Draw now (with ``target_frames_per_second``: pace to that rate, or return False to
        catch up), as ``common_hal_busdisplay_busdisplay_refresh`` does."""
        if not self._auto and not self._first_manual and target_frames_per_second is not None:
            target = 1000 // target_frames_per_second
            now = self._ms()
            since_real = now - self._last_refresh
            if minimum_frames_per_second > 0 and since_real > 1000 // minimum_frames_per_second:
                raise RuntimeError("Below minimum frame rate")
            since_call = now - self._last_call
            self._last_call = now
            if since_call > target:
                return False
            remaining = target - since_real % target
            while self._ms() - self._last_call < remaining:
                pass
        self._first_manual = False
        self._refresh()
        return True

    def fill_row(self, y, buffer):
        """Pixels of one row of the physical area (RGB565 as sent) into ``buffer``."""
        width = self._width
        if len(buffer) < 2 * width:
            raise ValueError("Buffer too small")
        px = array.array("H", bytes(2 * width))
        self._render(0, y, width, y + 1, px)
        memoryview(buffer)[: 2 * width] = memoryview(px).cast("B")
        return buffer

    # -- the bus (displayio_display_bus_*, BusDisplay construct/brightness) -----------------

    def _send_init(self, init):
        bus = self._bus
        i = 0
        n = len(init)
        while i < n:
            cmd = init[i]
            size = init[i + 1]
            delay = size & 0x80
            size &= 0x7F
            data = init[i + 2 : i + 2 + size]
            if self._data_as_commands:
                bus._send(True, cmd, None)
                for b in data:
                    bus._send(True, b, None)
            else:
                bus._send(True, cmd, None)
                bus._send(False, 0, data)
            ms = 10
            if delay:
                ms = init[i + 2 + size]
                if ms == 255:
                    ms = 500
                size += 1
            if INIT_DELAYS:
                time.sleep(ms / 1000)
            i += 2 + size
        bus._flush()

    def _set_brightness(self, value):
        if not self._on_high:
            value = 1.0 - value
        ok = False
        if self._backlight:  # PWM on the backlight pin (ESP32-S3 has pwmio): not on the bus
            ok = True
            self._bus._record_backlight(value)
        elif self._brightness_cmd is not None:
            bus = self._bus
            self._win[0] = int(0xFF * value)
            bus._send(True, self._brightness_cmd, None)
            bus._send(False, 0, self._win, 1)
            ok = True
        if ok:
            self._brightness = value
        return ok

    def _set_rotation(self, rotation, swap):
        rotation %= 360
        # the property setter swaps width and height when transposing changes; the constructor
        # takes them as given (display_core_construct)
        if swap and (self._rotation in (90, 270)) != (rotation in (90, 270)):
            self._width, self._height = self._height, self._width
        self._rotation = rotation
        # the physical area (display_core_set_rotation): width x height, swapped when transposed
        if rotation in (90, 270):
            self._pw, self._ph = self._height, self._width
        else:
            self._pw, self._ph = self._width, self._height
        rows = max(1, (_AREA_BUFFER // 2) // self._pw)
        self._rows_per_area = rows
        self._crc = array.array("I", bytes(4 * ((self._ph + rows - 1) // rows)))
        self._full = True

    def _window(self, cmd, a, b):
        bus = self._bus
        w = self._win
        if self._ram_small:
            w[0] = a
            w[1] = b
            n = 2
        else:
            w[0] = a >> 8
            w[1] = a & 0xFF
            w[2] = b >> 8
            w[3] = b & 0xFF
            n = 4
        if self._data_as_commands:
            bus._send(True, cmd, None)
            for i in range(n):
                bus._send(True, w[i], None)
        else:
            bus._send(True, cmd, None)
            bus._send(False, 0, w, n)

    def _send_area(self, x1, y1, x2, y2, npx):
        # displayio_display_bus_set_region_to_update + _send_pixels
        self._window(self._col_cmd, x1 + self._colstart, x2 - 1 + self._colstart)
        self._window(self._row_cmd, y1 + self._rowstart, y2 - 1 + self._rowstart)
        bus = self._bus
        if not self._data_as_commands:
            bus._send(True, self._ram_cmd, None)
        bus._send(False, 0, self._px, 2 * npx)
        self.areas_sent += 1

    # -- refresh ----------------------------------------------------------------------------

    def _ms(self):
        return _ms_now()

    def _release(self):
        fourwire._release(self._backlight_pin)
        if self._root is not None:
            self._holder.remove(self._root)
            self._root = None
        self._auto = False

    def _refresh(self):
        self._last_refresh = self._ms()
        self.frames += 1
        if not RENDER:
            return
        pw = self._pw
        ph = self._ph
        rows = self._rows_per_area
        px = self._px
        crcs = self._crc
        full = self._full
        j = 0
        y = 0
        while y < ph:
            y2 = y + rows
            if y2 > ph:
                y2 = ph
            self._render(0, y, pw, y2, px)
            n = pw * (y2 - y)
            crc = _crc32(memoryview(px)[:n] if n < len(px) else px)
            if full or crc != crcs[j]:
                crcs[j] = crc
                self._send_area(0, y, pw, y2, n)
            j += 1
            y = y2
        self._bus._flush()
        self._full = False
        self._last_refresh = self._ms()

    def _render(self, x1, y1, x2, y2, px):
        """Fill ``px`` with the physical rectangle x1..x2-1, y1..y2-1 (row-major, RGB565 in
        wire byte order); black where nothing covers it."""
        bw = x2 - x1
        for i in range(bw * (y2 - y1)):
            px[i] = 0
        rot = self._rotation
        pw = self._pw
        ph = self._ph
        # the logical rectangle, and the buffer offset of logical (lx, ly): c0 + cx*lx + cy*ly
        # (display_core_set_rotation's transform; one name at a time: no tuple per area)
        if rot == 0:
            self._lx0 = x1
            self._ly0 = y1
            self._lx1 = x2
            self._ly1 = y2
            self._c0 = -y1 * bw - x1
            self._cx = 1
            self._cy = bw
        elif rot == 90:  # transpose, mirror x: px = pw - 1 - ly, py = lx
            self._lx0 = y1
            self._ly0 = pw - x2
            self._lx1 = y2
            self._ly1 = pw - x1
            self._c0 = -y1 * bw + pw - 1 - x1
            self._cx = bw
            self._cy = -1
        elif rot == 180:  # mirror both: px = pw - 1 - lx, py = ph - 1 - ly
            self._lx0 = pw - x2
            self._ly0 = ph - y2
            self._lx1 = pw - x1
            self._ly1 = ph - y1
            self._c0 = (ph - 1 - y1) * bw + pw - 1 - x1
            self._cx = -1
            self._cy = -bw
        else:  # 270: transpose, mirror y: px = ly, py = ph - 1 - lx
            self._lx0 = ph - y2
            self._ly0 = x1
            self._lx1 = ph - y1
            self._ly1 = x2
            self._c0 = (ph - 1 - y1) * bw - x1
            self._cx = -bw
            self._cy = 1
        root = self._root
        if root is not None:
            self._group(root, 0, 0, 1, px)

    def _group(self, g, ox, oy, s, px):
        if g.hidden:
            return
        for i in range(len(g)):
            item = g[i]
            if isinstance(item, displayio.TileGrid):
                self._tilegrid(item, ox + s * item.x, oy + s * item.y, s, px)
            elif isinstance(item, displayio.Group):
                self._group(item, ox + s * item.x, oy + s * item.y, s * item.scale, px)
            elif _Rectangle is not None and isinstance(item, _Rectangle):
                self._rectangle(item, ox + s * item.x, oy + s * item.y, px)

    def _colours(self, shader):
        """Fill the lookup table for palette indices below _LUT: wire-order RGB565, or -1 for
        transparent. Returns the number of entries filled (0: not a Palette)."""
        if not isinstance(shader, displayio.Palette):
            return 0
        lut = self._lut
        n = len(shader)
        if n > _LUT:
            n = _LUT
        for i in range(n):
            lut[i] = -1 if shader.is_transparent(i) else self._rgb565(shader[i])
        return n

    def _rgb565(self, c):
        v = ((c >> 19) << 11) | (((c >> 10) & 0x3F) << 5) | ((c >> 3) & 0x1F)
        if self._swap:  # high byte first on the wire: little-endian memory holds it swapped
            v = ((v & 0xFF) << 8) | (v >> 8)
        return v

    def _shade(self, shader, n, value):
        if value < n:
            return self._lut[value]
        if shader is None:
            return value & 0xFFFF
        if isinstance(shader, displayio.Palette):
            if value >= len(shader) or shader.is_transparent(value):
                return -1
            return self._rgb565(shader[value])
        if isinstance(shader, displayio.ColorConverter):  # RGB888 input; opaque
            return self._rgb565(value)
        return -1  # TilePaletteMapper and others: not rendered by this stand-in

    def _rectangle(self, r, x, y, px):
        # vectorio: the position scales with the group, the shape's pixels do not
        if r.hidden:
            return
        lx0 = self._lx0
        lx1 = self._lx1
        ly0 = self._ly0
        ly1 = self._ly1
        a = x if x > lx0 else lx0
        b = x + r.width if x + r.width < lx1 else lx1
        c = y if y > ly0 else ly0
        d = y + r.height if y + r.height < ly1 else ly1
        if a >= b or c >= d:
            return
        shader = r.pixel_shader
        n = self._colours(shader)
        v = self._shade(shader, n, r.color_index)
        if v < 0:
            return
        c0 = self._c0
        cx = self._cx
        cy = self._cy
        for ly in range(c, d):
            o = c0 + cy * ly
            for lx in range(a, b):
                px[o + cx * lx] = v

    def _tilegrid(self, t, x, y, s, px):
        if t.hidden:
            return
        tw = t.tile_width
        th = t.tile_height
        gw = t.width * tw  # the grid's own pixel size
        gh = t.height * th
        tr = t.transpose_xy
        dw = gh if tr else gw  # the size shown (no tuple: nothing allocated per layer)
        dh = gw if tr else gh
        lx0 = self._lx0
        lx1 = self._lx1
        ly0 = self._ly0
        ly1 = self._ly1
        a = x if x > lx0 else lx0
        b = x + dw * s if x + dw * s < lx1 else lx1
        c = y if y > ly0 else ly0
        d = y + dh * s if y + dh * s < ly1 else ly1
        if a >= b or c >= d:
            return
        bmp = t.bitmap
        shader = t.pixel_shader
        n = self._colours(shader)
        lut = self._lut
        fx = t.flip_x
        fy = t.flip_y
        bmw = bmp.width
        cols = bmw // tw
        tiles_w = t.width
        c0 = self._c0
        cx = self._cx
        cy = self._cy
        # integer indices only: t[x, y] and bmp[x, y] would build a tuple per pixel
        for ly in range(c, d):
            v = (ly - y) // s
            o = c0 + cy * ly
            for lx in range(a, b):
                u = (lx - x) // s
                if tr:
                    gx = v
                    gy = u
                else:
                    gx = u
                    gy = v
                if fx:
                    gx = gw - 1 - gx
                if fy:
                    gy = gh - 1 - gy
                tile = t[(gy // th) * tiles_w + gx // tw]
                value = bmp[((tile // cols) * th + gy % th) * bmw + (tile % cols) * tw + gx % tw]
                colour = lut[value] if value < n else self._shade(shader, n, value)
                if colour >= 0:
                    px[o + cx * lx] = colour
