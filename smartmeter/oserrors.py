# SPDX-License-Identifier: MIT
"""The errno of an OSError, read the same way on the board and on a PC.

Its own module: the SD card code (``datalog``) and the network code (``netutil``) both need it,
and a board without WiFi must not load the network helpers for it.
"""


def errno_of(exc):
    """The errno of an OSError (``exc.errno`` or ``args[0]``), or None."""
    code = getattr(exc, "errno", None)
    if code is None and getattr(exc, "args", None):
        code = exc.args[0]
    return code if isinstance(code, int) else None
