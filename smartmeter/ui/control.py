# SPDX-License-Identifier: MIT
"""The TFT and the two buttons: navigation, backlight timeout and screen updates.

``Ui.poll(now_ms)`` is one pass of the app loop: it takes the queued key events (keypad.Keys
queues them in the background, so presses during a slow SD write are not lost), switches the
backlight off after ``timeout_s`` without a press, and brings the visible screen up to date -
on a new telegram, after a key press, and once a second (uptime, "last telegram" age).

While the backlight is off nothing in the display tree is touched and ``refresh()`` is not
called, so there is no SPI traffic. The first press after that only wakes the display.

Keys: NEXT (key 0) goes to the next screen or menu item; ENTER (key 1) selects in the menu and
opens the menu from any data screen. Restart asks for confirmation (ENTER = yes, NEXT = no).
"""

from ..timeutil import ticks_diff as _default_ticks_diff
from .screens import CYCLE
from .texts import MENU

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


NEXT = const(0)
ENTER = const(1)
_UPDATE_MS = const(1000)  # refresh clocks and problem list at least this often
_MAX_EVENTS = const(16)  # key events handled per pass (the queue keeps the rest)


class Ui:
    """Screens and buttons.

    :param display: displayio display (``root_group``, ``brightness``, ``auto_refresh``,
        ``refresh()``), or None: then the Ui only drains the key queue
    :param keys: object with ``events.get()`` -> event (``key_number``, ``pressed``) or None
    :param state: :class:`smartmeter.state.State`
    :param language: "de" or "en"
    :param timeout_s: backlight off after this many seconds without a press (0 = never)
    :param actions: object with ``restart()`` and ``setup_mode()``
    :param ticks_diff: wrap-safe ``ticks_diff(new, old)`` in ms (default: 2**29 ticks)
    """

    name = "display"

    def __init__(
        self,
        display,
        keys,
        state,
        language="de",
        timeout_s=120,
        actions=None,
        ticks_diff=None,
    ):
        self.display = display
        self.keys = keys
        self.state = state
        self.language = "de" if language == "de" else "en"
        self.timeout_ms = int(timeout_s * 1000)
        self.actions = actions
        self.ticks_diff = ticks_diff or _default_ticks_diff
        self.screen = CYCLE[0]
        self.menu_index = 0
        self.lit = True
        self.refreshes = 0  # display.refresh() calls (tests: none while dark)
        self.presses = 0
        self._message = None
        self._last_press = None
        self._last_update = None
        self._seen_latest = None
        self._seen_decoded = -1
        self._dirty = True
        self.view = None
        self.dimmable = False
        if display is not None:
            from .screens import View

            self.view = View(self.language)
            try:
                display.auto_refresh = False  # we refresh once per batch of changes
            except AttributeError:
                pass
            display.root_group = self.view.root
            # No backlight control (no backlight pin): never go dark, or the screen would freeze.
            self.dimmable = self._brightness(1.0)

    @property
    def changes(self):
        """Number of display-tree assignments (label text, colour, hidden, position) so far."""
        return self.view.changes if self.view is not None else 0

    @property
    def frames(self):
        """Number of ``display.refresh()`` calls so far (a new frame was drawn)."""
        return self.refreshes

    def screen_name(self):
        """The name of what is shown: a screen of CYCLE, "sysinfo", "confirm" or "message"."""
        return "message" if self._message is not None else self.screen

    # -- loop ------------------------------------------------------------------------------

    def poll(self, now_ms):
        """One loop pass: key events, backlight timeout, update of the visible screen."""
        if self._last_press is None:
            self._last_press = now_ms
        self._read_keys(now_ms)
        if self.view is None:
            return
        diff = self.ticks_diff
        if (
            self.lit
            and self.dimmable
            and self.timeout_ms
            and diff(now_ms, self._last_press) >= self.timeout_ms
        ):
            self._sleep()
        if not self.lit:
            return
        st = self.state
        latest = st.latest
        decoded = st.counters.decoded
        fresh = latest is not self._seen_latest or decoded != self._seen_decoded
        if fresh and latest is not None and self._message is not None:
            self._message = None  # the first telegram replaces the boot message
            self._dirty = True
        if (
            fresh
            or self._dirty
            or self._last_update is None
            or diff(now_ms, self._last_update) >= _UPDATE_MS
        ):
            self._seen_latest = latest
            self._seen_decoded = decoded
            self._render(now_ms)

    def show_message(self, text):
        """Show ``text`` full-screen now (boot steps, "Restarting..."); None clears it.

        The message stays until a key press or the first new telegram.
        """
        self._message = text
        self._dirty = True
        if self.view is not None and self.lit:
            self._render(self._last_update)

    def goto(self, screen):
        """Show ``screen`` (one of CYCLE, "sysinfo" or "confirm") at the next poll."""
        self.screen = screen
        self._message = None
        self._dirty = True

    # -- internals -------------------------------------------------------------------------

    def _render(self, now_ms):
        view = self.view
        if view is None:
            return
        before = view.changes
        if self._message is not None:
            view.select("message")
            view.set_message(self._message)
        else:
            view.select(self.screen)
            view.update(self.state, now_ms, self.ticks_diff, self.menu_index)
        self._dirty = False
        if now_ms is not None:
            self._last_update = now_ms
        if view.changes != before:
            self.display.refresh()
            self.refreshes += 1

    def _read_keys(self, now_ms):
        if self.keys is None:
            return
        events = self.keys.events
        for _ in range(_MAX_EVENTS):
            ev = events.get()
            if ev is None:
                return
            if ev.pressed:
                self._press(ev.key_number, now_ms)

    def _brightness(self, value):
        try:
            self.display.brightness = value
            return True
        except (RuntimeError, AttributeError, ValueError):  # "Brightness not adjustable"
            return False

    def _sleep(self):
        self.lit = False
        self._brightness(0)
        if self.screen == "confirm":
            self.screen = "menu"  # never wake up into a pending restart question
            self._dirty = True

    def _press(self, key, now_ms):
        self.presses += 1
        self._last_press = now_ms
        if self.view is None:
            return
        self._dirty = True
        if not self.lit:  # the first press only wakes the display
            self.lit = True
            self._brightness(1.0)
            return
        if self._message is not None:  # a press dismisses the message
            self._message = None
            return
        screen = self.screen
        if screen == "confirm":
            if key == ENTER:
                self._restart()
            else:
                self.screen = "menu"
        elif screen == "menu":
            if key == NEXT:
                self.menu_index += 1
                if self.menu_index >= len(MENU):  # past the last item: leave the menu
                    self.menu_index = 0
                    self.screen = CYCLE[0]
            else:
                self._select(MENU[self.menu_index])
        elif screen == "sysinfo":
            self.screen = CYCLE[0] if key == NEXT else "menu"
        elif key == NEXT:
            self.screen = CYCLE[(CYCLE.index(screen) + 1) % len(CYCLE)]
        else:
            self.screen = "menu"
            self.menu_index = 0

    def _select(self, item):
        if item == "restart":
            self.screen = "confirm"
        elif item == "sysinfo":
            self.screen = "sysinfo"
        else:  # setup mode: the system screen then shows the access point and its password
            self.screen = "sysinfo"
            if self.actions is not None:
                self.actions.setup_mode()

    def _restart(self):
        self.screen = "menu"
        if self.view is not None:
            self.show_message(self.view.t["restarting"])
        if self.actions is not None:
            self.actions.restart()
