# SPDX-License-Identifier: MIT
"""Stand-in for CircuitPython 10's ``fourwire`` module (a board in a box; runs inside the VM).

Imitates ``fourwire.FourWire`` of adafruit/circuitpython shared-bindings/fourwire/FourWire.c and
shared-module/fourwire/FourWire.c, recording the bytes on the wire; the code and its notes are
in ``_fourwire.py``. This file only imports it and measures the VM heap that import holds (on a
board the module is C in flash; ``busdisplay.heap_bytes()`` includes it).
"""

import gc

gc.collect()
_b = gc.mem_alloc()
import _fourwire  # noqa: E402
from _fourwire import FourWire  # noqa: E402, F401

gc.collect()
_fourwire._heap[0] = gc.mem_alloc() - _b
del _b
