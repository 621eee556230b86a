# SPDX-License-Identifier: MIT
"""What this copy of the firmware is. `make release` replaces this file with the release's values.

These defaults mean "running from source" (a checkout copied with `make deploy` from the repository
or the PC simulator): no target CircuitPython version, nothing to check.
"""

VERSION = None  # the release's version; None: smartmeter.__version__
CIRCUITPYTHON = None  # CircuitPython major version the .mpy files were compiled for
MPY_CROSS = None
COMMIT = None
LIBRARIES = ()  # (module, version) of the bundle libraries shipped in lib/
