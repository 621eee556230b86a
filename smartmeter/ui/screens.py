# SPDX-License-Identifier: MIT
"""The display tree of the TFT (160x128 landscape) and the in-place updates of each screen.

Every screen is one small class ``Screen`` in its own module ``screen_<name>.py``, with
``build(group, texts)`` (make its labels when it is shown) and ``update(view, state, now)``
(assign what changed); :data:`SCREENS` lists the names in order with a ``cycle`` flag (whether
NEXT visits it); :data:`CYCLE` is derived from it, and the simulator (``sim/screens.py``) and
the tests import both. A new screen is one module ``screen_<name>.py``, its texts in
``texts_de.py`` and ``texts_en.py`` and one entry in ``SCREENS``.

Only the visible screen is in the tree (with the header, time band and banner): switching
screens drops the old screen's labels and builds the new one's, so the heap holds one screen's
labels, not all of them - and on the board one screen's code: a screen's module is imported
when the screen is shown and freed when it goes. While a screen is shown a new telegram only
assigns ``label.text`` where the string differs, so displayio refreshes just the dirty
rectangles. Every assignment is counted in ``View.changes`` (the bench reads it). Labels are
made by :func:`label` alone: :class:`.tiletext.TileText`, one TileGrid over the font's glyphs
(``_LEAN_LABELS = const(0)`` switches to adafruit_display_text's ``bitmap_label``, 3-4 times
the heap per label; README "Memory").

Layout (y in px): header bar 0-13 (dark grey, title and page), timestamp band 14-27 (dark blue,
meter time), content 29-113, problem banner 114-127 (red, only when something is wrong).
Font: terminalio (6x12 px cells); values at scale 2 (12x24).
"""

import sys

import displayio
import vectorio

from ..state import problem_text
from ..timeutil import civil_from_days
from .texts import clip, meter_time, texts
from .tiletext import TileText

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Every screen, in NEXT order for those with ``cycle`` True: (name, cycle). The single source of
# the screen names; screen ``name`` is the class ``Screen`` of ``screen_<name>.py``.
SCREENS = (
    ("status", True),
    ("phases", True),
    ("power", True),
    ("energy", True),
    ("usage", True),
    ("tariff", True),
    ("env", True),
    ("menu", True),
    ("sysinfo", False),
    ("confirm", False),
)
CYCLE = tuple(name for name, cycle in SCREENS if cycle)

# On the board a screen's module goes out of ``sys.modules`` as soon as it is loaded: the shown
# screen holds its code, and the collector frees it when the next screen replaces it (the same
# rule as app.py's parts). Not on a PC, where tests reach the classes by module.
_UNLOAD = sys.implementation.name in ("circuitpython", "micropython")

# 0: adafruit_display_text bitmap_label instead, 3-4x the heap per label (README); a const, so
# the compiler leaves the branch not taken out of the board's bytecode
_LEAN_LABELS = const(1)
_WIDTH = const(160)
_HEIGHT = const(128)
COLS = const(26)  # characters per line at scale 1
_BANNER_Y = const(114)
_MSG_LINES = const(10)

# Colours (RGB888). Header and band as the original (RGB565 0x39C7 and 0x1A6F).
WHITE = 0xFFFFFF
BLACK = 0x000000
HEADER = 0x393939
BAND = 0x184D7B
VOLT = 0x0030A0
AMP = 0xB00000
LABEL = 0x005A18
ENERGY = 0x8A3A00
RED = 0xC00000
GREEN = 0x007A00
GREY = 0x505050


def _rect(group, color, x, y, w, h):
    pal = displayio.Palette(1)
    pal[0] = color
    group.append(vectorio.Rectangle(pixel_shader=pal, width=w, height=h, x=x, y=y))
    return pal


def label(group, text, x, y, scale=1, color=BLACK, right=False, center=False):
    """A label whose top-left (or top-right / top-centre) corner is at (x, y)."""
    ax = 1.0 if right else 0.5 if center else 0.0
    if _LEAN_LABELS:
        lbl = TileText(text, color, scale, ax, (x, y))
    else:
        import terminalio
        from adafruit_display_text.bitmap_label import Label

        lbl = Label(
            terminalio.FONT,
            text=text,
            color=color,
            scale=scale,
            anchor_point=(ax, 0.0),
            anchored_position=(x, y),
        )
    group.append(lbl)
    return lbl


# -- for the screens -----------------------------------------------------------------------


def month_of(day):
    """Months since year 0 of a day number (the usage summary's month key)."""
    y, m, _d = civil_from_days(day)
    return y * 12 + m - 1


def values_of(state):
    """``(values, derived)`` of the latest reading, empty before the first."""
    latest = state.latest
    if latest is None:
        return {}, {}
    return latest.values, latest.derived


def usage_now(state):
    """``(usage, epoch, tariff)`` for the usage screens: the summary, the latest telegram's time
    (the summary's own after a boot, before the first telegram) and its tariff."""
    usage = state.usage
    epoch = state.latest_epoch
    if epoch is None and usage is not None:
        epoch = usage.last_epoch
    return usage, epoch, usage.tariff if usage is not None else None


def _screen_class(name):
    """The class ``Screen`` of ``screen_<name>.py``, imported now (see ``_UNLOAD``; also when
    the import fails half-way, e.g. MemoryError: the next try loads it afresh)."""
    package = __name__.rpartition(".")[0]
    module = "screen_" + name
    try:
        return __import__(package + "." + module, None, None, ("Screen",)).Screen
    finally:
        if _UNLOAD:
            sys.modules.pop(package + "." + module, None)
            try:
                delattr(sys.modules[package], module)
            except (AttributeError, KeyError):
                pass


class View:
    """The TFT as one displayio tree (``root``) plus the code that fills it.

    Only the visible screen exists: ``select`` drops the labels of the screen shown before and
    builds the new one (the header, time band and problem banner stay). All screens at once
    would hold about 100 labels - more heap than a board without PSRAM has for the display.
    ``screens`` and ``groups`` map the visible screen's name (a name of :data:`SCREENS` or
    "message") to its instance and group (tests read their labels). While a screen updates,
    ``problems``, ``ticks_diff`` and ``menu_index`` hold this pass's context.
    """

    def __init__(self, language="de"):
        self.language = language
        self.t = texts(language)
        self.changes = 0
        self.problems = []
        self.ticks_diff = None
        self.menu_index = 0
        self.root = root = displayio.Group()
        self._bg = _rect(root, WHITE, 0, 0, _WIDTH, _HEIGHT)
        self.groups = {}
        self.screens = {}
        # Header bar and timestamp band
        g = self._chrome = displayio.Group()
        root.append(g)
        _rect(g, HEADER, 0, 0, _WIDTH, 14)
        _rect(g, BAND, 0, 14, _WIDTH, 14)
        self._title = label(g, "", 2, 1, color=WHITE)
        self._page = label(g, "", 158, 1, color=WHITE, right=True)
        self._time = label(g, "--", 80, 15, color=WHITE, center=True)
        # Problem banner (above every screen; the screen's group goes in below it)
        g = self._banner = displayio.Group()
        g.hidden = True
        root.append(g)
        _rect(g, RED, 0, _BANNER_Y, _WIDTH, _HEIGHT - _BANNER_Y)
        self._banner_text = label(g, "", 2, _BANNER_Y + 1, color=WHITE)
        self._msg_big = None
        self._msg = ()
        self.screen = None

    def _build(self, name):
        """Make the group of screen ``name`` (or "message") and put it in the tree."""
        g = displayio.Group()
        if name == "message":
            _rect(g, BLACK, 0, 0, _WIDTH, _HEIGHT)
            self._msg_big = label(g, "", 80, 52, 2, WHITE, center=True)
            self._msg = [label(g, "", 2, 4 + 12 * i, color=WHITE) for i in range(_MSG_LINES)]
            self.root.append(g)  # above the banner
        else:
            screen = _screen_class(name)()
            screen.build(g, self.t)
            self.screens[name] = screen
            self.root.insert(2, g)  # after background and header, below the banner
        self.groups[name] = g
        self.changes += 1

    def _drop(self, name):
        """Take screen ``name`` out of the tree and forget its labels (the heap gets them back)."""
        g = self.groups.pop(name, None)
        if g is not None:
            self.root.remove(g)
            self.changes += 1
        self.screens.pop(name, None)
        if name == "message":
            self._msg_big = None
            self._msg = ()

    # -- primitive changes (counted) -------------------------------------------------------

    def set_text(self, lbl, text):
        """Assign ``lbl.text`` only when it differs."""
        if lbl.text != text:
            lbl.text = text
            self.changes += 1

    def set_color(self, lbl, color):
        """Assign ``lbl.color`` only when it differs."""
        if lbl.color != color:
            lbl.color = color
            self.changes += 1

    def set_hidden(self, group, hidden):
        """Show or hide a group, only when that changes."""
        if group.hidden != hidden:
            group.hidden = hidden
            self.changes += 1

    def fill(self, labels, lines):
        """Put ``[(text, colour), ...]`` into ``labels`` (clipped), blanking the rest."""
        for n, lbl in enumerate(labels):
            if n < len(lines):
                text, color = lines[n]
                self.set_text(lbl, clip(text, COLS))
                self.set_color(lbl, color)
            else:
                self.set_text(lbl, "")

    # -- screens ---------------------------------------------------------------------------

    def select(self, name):
        """Make screen ``name`` (a name of :data:`SCREENS` or "message") the visible one."""
        if name == self.screen:
            return
        if self.screen is not None:
            self._drop(self.screen)
        self._build(name)
        self.set_hidden(self._chrome, name == "message")
        if name == "message":
            self.set_hidden(self._banner, True)
        screen = self.screens.get(name)
        bg = getattr(screen, "background", WHITE)
        if self._bg[0] != bg:
            self._bg[0] = bg
            self.changes += 1
        self.set_text(self._title, self.t.get(name, ""))
        page = "%d/%d" % (CYCLE.index(name) + 1, len(CYCLE)) if name in CYCLE else ""
        self.set_text(self._page, page)
        self.screen = name

    def update(self, state, now=None, ticks_diff=None, menu_index=0):
        """Bring the visible screen, the time band and the banner up to date with ``state``."""
        name = self.screen
        latest = state.latest
        self.set_text(self._time, meter_time(latest.meter_time if latest else None, self.language))
        problems = self.problems = state.problems(now, ticks_diff)
        self.ticks_diff = ticks_diff
        self.menu_index = menu_index
        screen = self.screens.get(name)
        if screen is not None:
            screen.update(self, state, now)
        show = bool(problems) and name not in ("status", "message")
        if show:
            text = problem_text(problems[0], self.language)
            more = " +%d" % (len(problems) - 1) if len(problems) > 1 else ""
            self.set_text(self._banner_text, clip(text, COLS - len(more)) + more)
        self.set_hidden(self._banner, not show)

    def set_message(self, text):
        """Fill the full-screen message: one big line when short, else wrapped small lines."""
        text = text or ""
        big = "\n" not in text and len(text) <= 13
        self.set_text(self._msg_big, text if big else "")
        lines = [] if big else _wrap(text, COLS)
        self.fill(self._msg, [(line, WHITE) for line in lines[:_MSG_LINES]])


def _wrap(text, width):
    """Split ``text`` at newlines, then word-wrap each part to ``width`` characters."""
    out = []
    for part in text.split("\n"):
        line = ""
        for word in part.split(" "):
            while len(word) > width:  # a word longer than a line (URL, password)
                if line:
                    out.append(line)
                    line = ""
                out.append(word[:width])
                word = word[width:]
            if not line:
                line = word
            elif len(line) + 1 + len(word) <= width:
                line += " " + word
            else:
                out.append(line)
                line = word
        out.append(line)
    return out
