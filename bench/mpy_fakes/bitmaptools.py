# Stand-in for CircuitPython's bitmaptools (C, built into the ESP32-S3 builds) for the memory
# bench in the MicroPython VM: adafruit_display_text.bitmap_label draws each glyph with blit().
# It allocates nothing (neither does the C function); nothing is drawn.


def blit(dest, source, x, y, *, x1=0, y1=0, x2=None, y2=None, skip_source_index=None, **kw):
    pass


def replace_color(bitmap, old, new):
    pass
