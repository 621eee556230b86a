# SPDX-License-Identifier: MIT
"""``keypad`` stand-in: ``Keys``, ``Event``, ``EventQueue``; the buttons are pressed on the host
(``board/run.py``: keys n and e in the terminal, or a test's ``press()``).

Imitates adafruit/circuitpython shared-bindings/keypad/Keys.c, Event.c, EventQueue.c and
shared-module/keypad/EventQueue.c: ``Keys(pins, *, value_when_pressed, pull=True,
interval=0.020, max_events=64, debounce_threshold=1)`` (``max_events`` >= 1, threshold 1..127:
ValueError); ``events.get()`` gives an Event or None, ``get_into(event)`` a bool; a full queue
drops the NEW event and sets ``overflowed``; ``clear()`` empties it and resets ``overflowed``;
``Event`` equality and hash ignore the timestamp (ms, ``supervisor.ticks_ms`` time). Which key
numbers the host presses: the index into ``pins``; the host names keys by their pin.
"""

import _box
import microcontroller
import supervisor


class Event:
    def __init__(self, key_number=0, pressed=True):
        self.key_number = key_number
        self.pressed = pressed
        self.timestamp = supervisor.ticks_ms()

    @property
    def released(self):
        return not self.pressed

    def __eq__(self, other):
        return (
            isinstance(other, Event)
            and other.key_number == self.key_number
            and other.pressed == self.pressed
        )

    def __hash__(self):
        return self.key_number << 1 | (1 if self.pressed else 0)

    def __repr__(self):
        return "<Event: key_number %d %s>" % (
            self.key_number,
            "pressed" if self.pressed else "released",
        )


class EventQueue:
    def __init__(self, max_events):
        self._max = max_events
        self._events = []
        self.overflowed = False

    def _put(self, key_number, pressed):
        if len(self._events) >= self._max:
            self.overflowed = True
            return
        self._events.append(Event(key_number, pressed))

    def get(self):
        _box.pump()
        if not self._events:
            return None
        return self._events.pop(0)

    def get_into(self, event):
        _box.pump()
        if not self._events:
            return False
        e = self._events.pop(0)
        event.key_number = e.key_number
        event.pressed = e.pressed
        event.timestamp = e.timestamp
        return True

    def clear(self):
        _box.pump()
        self._events = []
        self.overflowed = False

    def __bool__(self):
        _box.pump()
        return bool(self._events)

    def __len__(self):
        _box.pump()
        return len(self._events)


_all = []


def _on_key(payload):
    """Host message: pin number, 1 pressed / 0 released."""
    pin_number, pressed = payload[0], payload[1] == 1
    for keys in _all:
        keys._pin_changed(pin_number, pressed)


_box.on(b"K"[0], _on_key)


class Keys:
    def __init__(
        self,
        pins,
        *,
        value_when_pressed,
        pull=True,
        interval=0.020,
        max_events=64,
        debounce_threshold=1,
    ):
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        if not 1 <= debounce_threshold <= 127:
            raise ValueError("debounce_threshold must be 1-127")
        numbers = []
        for p in pins:
            if not isinstance(p, microcontroller.Pin):
                raise TypeError("pin must be of type Pin")
            if p._number in numbers:
                raise TypeError("duplicate pins")
            numbers.append(p._number)
        for p in pins:
            microcontroller._claim(p)
        self._pins = tuple(pins)
        self._numbers = numbers
        self._pressed = [False] * len(numbers)  # the state at construction is adopted silently
        self.events = EventQueue(max_events)
        self.key_count = len(numbers)
        _all.append(self)

    def _pin_changed(self, pin_number, pressed):
        if pin_number not in self._numbers:
            return
        k = self._numbers.index(pin_number)
        if self._pressed[k] != pressed:
            self._pressed[k] = pressed
            self.events._put(k, pressed)

    def reset(self):
        self._pressed = [False] * len(self._numbers)

    def deinit(self):
        if self in _all:
            _all.remove(self)
            for p in self._pins:
                microcontroller._release(p)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.deinit()
