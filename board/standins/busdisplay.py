# SPDX-License-Identifier: MIT
"""Stand-in for CircuitPython 10's ``busdisplay`` module (a board in a box; runs inside the VM).

Imitates ``busdisplay.BusDisplay`` of adafruit/circuitpython shared-bindings/busdisplay/BusDisplay.c
and shared-module/busdisplay/BusDisplay.c; the code and its notes are in ``_busdisplay.py``.
This file only imports it and measures the VM heap that import holds (on a board the module is
C in flash): ``heap_bytes()`` is what the display stand-ins hold, for memory figures to subtract.
"""

import gc

gc.collect()
_b = gc.mem_alloc()
import _busdisplay  # noqa: E402
from _busdisplay import BusDisplay, background, heap_bytes, release_displays  # noqa: E402, F401

gc.collect()
_busdisplay._heap[0] = gc.mem_alloc() - _b  # with _fourwire when this import loaded it
del _b
