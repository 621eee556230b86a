# SPDX-License-Identifier: MIT
"""Texts and number formatting for the TFT (ASCII only: the device's terminalio font may lack
umlauts and the degree sign, so German texts use "ae", "oe", "ue").

Every formatter returns a string of at most ``width`` characters, so a value can never run out of
its slot on the screen: decimals are dropped first, and a number that still does not fit is shown
as ``>9999`` (or ``<-999``). A value the meter did not send (None) is shown as ``--``.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


ABSENT = "--"
# The menu items (keys of the text tables; the screens and their order are ``screens.SCREENS``)
MENU = ("restart", "sysinfo", "setup")
_FMT = (None, "%s%d.%01d", "%s%d.%02d", "%s%d.%03d")
_SCALE = (1, 10, 100, 1000)
_KWH_DECIMAL_BELOW_WH = const(10_000_000)  # one decimal below 10 000 kWh, none above

# Screen and menu texts: one module per language (``texts_de.py``, ``texts_en.py``), so a board
# holds only the table of its UI_LANGUAGE.


def texts(language):
    """The text table for ``language`` ("de" or "en"; anything else gives English), imported on
    the first call: the other language's table never takes heap."""
    if language == "de":
        from .texts_de import TEXTS
    else:
        from .texts_en import TEXTS
    return TEXTS


def clip(text, width):
    """``text`` cut to ``width`` characters, the last one replaced by "~" when cut."""
    if len(text) <= width:
        return text
    return text[: width - 1] + "~"


def overflow(negative, width):
    """The "does not fit" marker: ``>999`` or ``<-99`` in ``width`` characters."""
    if negative:
        return "<-" + "9" * (width - 2)
    return ">" + "9" * (width - 1)


def fixed(value, decimals, width):
    """``value`` with up to ``decimals`` decimals in at most ``width`` characters, "--" if None.

    Rounds half away from zero on the decimal value (12.25 with one decimal is "12.3"), the same
    on the board and on a PC: ``"%.1f"`` rounds ties to even on CPython but away from zero on
    CircuitPython, and float32 puts values such as 2.345 just below the tie where a double is
    just above it (the board's floats keep 21 bits of mantissa). A meter sends integers with a
    scaler, so a value within a few of those steps of a tie is the tie.

    :param value: int, float or None
    """
    if value is None or value != value:  # noqa: PLR0124 - None or NaN
        return ABSENT
    if value - value != 0:  # +-inf
        return overflow(value < 0, width)
    neg = value < 0
    a = -value if neg else value
    d = decimals
    while d >= 0:
        x = a * _SCALE[d]
        n = int(x)
        if x != n:  # ints and whole numbers are exact
            tol = x * 4e-6  # 8 steps of the board's floats (30-bit: 2**-21 relative)
            if x - n >= 0.5 - (tol if tol < 0.01 else 0.01):
                n += 1
        sign = "-" if neg and n else ""
        scale = _SCALE[d]
        s = _FMT[d] % (sign, n // scale, n % scale) if d else "%s%d" % (sign, n)
        if len(s) <= width:
            return s
        d -= 1
    return overflow(neg, width)


def current(value, width=4):
    """A phase current in A: 2 decimals below 10 A, 1 below 100 A, none above."""
    if value is None:
        return ABSENT
    a = abs(value)
    return fixed(value, 2 if a < 10 else 1 if a < 100 else 0, width)


def kwh(wh, width=8):
    """Energy in integer Wh as kWh: one decimal below 10 000 kWh, none above. Integer math only
    (single-precision floats on the device would round 8-digit counters)."""
    if wh is None:
        return ABSENT
    wh = int(wh)
    sign = "-" if wh < 0 else ""
    a = -wh if wh < 0 else wh
    tenths = (a + 50) // 100
    if tenths < _KWH_DECIMAL_BELOW_WH // 100:
        s = "%s%d.%d" % (sign, tenths // 10, tenths % 10)
    else:
        s = "%s%d" % (sign, (a + 500) // 1000)
    if len(s) > width:
        return overflow(wh < 0, width)
    return s


def euro(mct, width=5):
    """Milli-cent as euros: "12.34", or whole euros when that does not fit; "--" if None."""
    if mct is None:
        return ABSENT
    cents = (abs(mct) + 500) // 1000
    sign = "-" if mct < 0 and cents else ""
    s = "%s%d.%02d" % (sign, cents // 100, cents % 100)
    if len(s) > width:
        s = "%s%d" % (sign, (cents + 50) // 100)
    if len(s) > width:
        return overflow(mct < 0, width)
    return s


def uptime(seconds):
    """``seconds`` as "3d 04:05:06" (days only when there are any)."""
    s = int(seconds or 0)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return "%dd %02d:%02d:%02d" % (d, h, m, s)
    return "%02d:%02d:%02d" % (h, m, s)


def meter_time(t, language):
    """The meter time tuple (Y, M, D, h, m, s) as "01.05.2024 12:34:56" (de) or ISO-like (en)."""
    if t is None:
        return ABSENT
    if language == "de":
        return "%02d.%02d.%04d %02d:%02d:%02d" % (t[2], t[1], t[0], t[3], t[4], t[5])
    return "%04d-%02d-%02d %02d:%02d:%02d" % (t[0], t[1], t[2], t[3], t[4], t[5])


def age(ms):
    """A duration in ms as "12 s", "5 min", "3 h" or "2 d"."""
    s = ms // 1000
    if s < 120:
        return "%d s" % s
    if s < 7200:
        return "%d min" % (s // 60)
    if s < 172800:
        return "%d h" % (s // 3600)
    return "%d d" % (s // 86400)


def gigabytes(n):
    """Bytes as GB with one decimal ("29.7"), or "--"."""
    if n is None:
        return ABSENT
    tenths = (int(n) + 50_000_000) // 100_000_000
    return "%d.%d" % (tenths // 10, tenths % 10)
