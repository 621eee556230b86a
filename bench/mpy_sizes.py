# Runs INSIDE the MicroPython VM (bench/memory_bench.py object_sizes() starts it through
# mpy_memory.mjs): the heap each displayio stand-in (bench/mpy_fakes/) and each kind of label
# (adafruit_display_text's label and bitmap_label, smartmeter.ui.tiletext) really holds, to
# check the stand-ins weigh what CircuitPython's C objects weigh.
#
# The driver calls _s() and _c() in separate calls (the VM reclaims nothing within one call):
# each step builds N objects and keeps them; the heap after collection grows by N times one
# object's weight (plus one list slot, 4 bytes, subtracted).
import gc

import displayio
import terminalio

N = 100
KEEP = []
PAL = displayio.Palette(2)
FONT_BITMAP = terminalio.FONT.bitmap


def _label(module, text, scale):
    if module == "TileText":
        from smartmeter.ui.tiletext import TileText

        return TileText(text, 0, scale, 1.0, (80, 30))
    mod = __import__("adafruit_display_text." + module, None, None, ["Label"])
    return mod.Label(
        terminalio.FONT,
        text=text,
        color=0,
        scale=scale,
        anchor_point=(1.0, 0.0),
        anchored_position=(80, 30),
    )


def _tilegrid(width):
    return displayio.TileGrid(
        FONT_BITMAP, pixel_shader=PAL, width=width, tile_width=6, tile_height=12, x=1, y=2
    )


def plan():
    yield "(warm-up)", lambda: None
    yield "Group", displayio.Group
    yield "Palette(1)", lambda: displayio.Palette(1)
    yield "Palette(2)", lambda: displayio.Palette(2)
    yield "Palette(3)", lambda: displayio.Palette(3)
    yield "TileGrid 1x1", lambda: _tilegrid(1)
    yield "TileGrid 10x1", lambda: _tilegrid(10)
    yield "Bitmap 3x3 3 values", lambda: displayio.Bitmap(3, 3, 3)
    yield "Bitmap 30x14 3 values", lambda: displayio.Bitmap(30, 14, 3)
    yield "Bitmap 13x12 2 values", lambda: displayio.Bitmap(13, 12, 2)
    for module in ("label", "bitmap_label", "TileText"):
        yield "(import %s)" % module, lambda m=module: _label(m, "", 1)
        for text, scale in (("", 1), ("231.4", 2), ("cos phi (berechnet)", 1)):
            name = "%s %r scale %d" % (module, text, scale)
            yield name, (lambda m=module, t=text, s=scale: _label(m, t, s))


class Bench:
    def __init__(self):
        self.results = []

    def report(self):
        for name, size in self.results:
            if not name.startswith("("):  # warm-up and import steps only set the baseline
                print("size %-40s %d" % (name, size))


bench = Bench()
_plan = plan()
_state = {"name": None, "last": 0}


def _s():
    try:
        name, make = next(_plan)
    except StopIteration:
        _state["name"] = None
        return False
    _state["name"] = name
    keep = [None] * N
    for i in range(N):
        keep[i] = make()
    KEEP.append(keep)
    return True


def _c():
    gc.collect()
    now = gc.mem_alloc()
    if _state["name"] is not None:
        bench.results.append((_state["name"], round((now - _state["last"]) / N) - 4))
    _state["last"] = now
