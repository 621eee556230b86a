# SPDX-License-Identifier: MIT
"""Board entry point: everything happens in :func:`smartmeter.device.main`."""

import sys

# CircuitPython runs this file; on a PC the name "code" belongs to the standard library (pdb
# imports it), so importing this file there must do nothing.
if sys.implementation.name == "circuitpython":
    from smartmeter import device

    device.main()
