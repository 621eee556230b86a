# SPDX-License-Identifier: MIT
"""CircuitPython's ``os`` on the box (boot puts it into ``sys.modules["os"]``): the VM's ``os``
plus ``getenv`` reading ``/settings.toml`` and ``sync``.

``getenv`` imitates adafruit/circuitpython supervisor/shared/settings.c (``settings_get_raw_vstr``
via shared-module/os/__init__.c ``common_hal_os_getenv``): the file is scanned on each call, the
first ``key = value`` line at the top level wins (a ``[section]`` ends the search), a quoted
value is unescaped (\\n \\t \\r \\b \\f \\v \\uXXXX \\UXXXXXXXX, other escapes give the
character), a bare value is returned as text up to a ``#`` comment with spaces trimmed; a value
that cannot be read gives ``default``. CircuitPython 10.3 returns strings only (``7`` is "7").
The VM's own ``getenv`` reads the host's environment, which a board does not have.
"""

import os as _vm

_SETTINGS = "/settings.toml"

for _name in dir(_vm):
    if not _name.startswith("__") and _name != "getenv":
        globals()[_name] = getattr(_vm, _name)


def _unquote(text):
    out = []
    i = 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            rest = text[i + 1 :].strip()
            if rest and not rest.startswith("#"):
                return None
            return "".join(out)
        if c == "\\":
            i += 1
            if i >= n:
                return None
            c = text[i]
            if c in "uU":
                size = 4 if c == "u" else 8
                try:
                    out.append(chr(int(text[i + 1 : i + 1 + size], 16)))
                except ValueError:
                    return None
                i += size + 1
                continue
            c = {"b": "\b", "r": "\r", "n": "\n", "t": "\t", "v": "\v", "f": "\f"}.get(c, c)
        out.append(c)
        i += 1
    return None  # no closing quote on the line


def getenv(key, default=None):
    try:
        f = open(_SETTINGS, "rb")
    except OSError:
        return default
    try:
        for raw in f:
            line = raw.decode("utf-8").lstrip(" \t\r")
            if line.startswith("["):
                return default
            if not line.startswith(key):
                continue
            rest = line[len(key) :].lstrip(" \t")
            if not rest.startswith("="):
                continue
            value = rest[1:].strip(" \t\r\n")
            if not value:
                return default
            if value.startswith('"'):
                text = _unquote(value)
                return default if text is None else text
            return value.split("#", 1)[0].rstrip(" \t\r")
    finally:
        f.close()
    return default


def sync():
    """Flush every mounted filesystem (the box's SD image file among them)."""
    import _boxdisk

    _boxdisk.flush_all()
