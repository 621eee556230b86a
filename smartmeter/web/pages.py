# SPDX-License-Identifier: MIT
"""The web pages as real files in ``assets/``, served from flash through a fixed allowlist.

``assets/`` holds small HTML shells (home, usage, files, settings), one
stylesheet (``app.css``) and one script (``app.js``, checked with ``node --check`` by
``make lint``). The pages fetch everything from the JSON API (docs/web-api.md); nothing is
templated, so nothing of them sits in RAM: each response is streamed from flash in 4 KiB slices
by the web server's file job (the strings these files replace cost 12.2 KB of heap once
imported).

The only way from a request to a file is :data:`ASSETS`, a fixed dict of asset name -> file
name that the route table names explicitly; no part of a URL becomes part of a path. The pages
are English (``lang="en"``); the problems they show come from ``/api/status`` in UI_LANGUAGE.
"""

# asset name -> (file name in assets/, Content-Type)
ASSETS = {
    "home": ("home.html", "text/html; charset=utf-8"),
    "usage": ("usage.html", "text/html; charset=utf-8"),
    "files": ("files.html", "text/html; charset=utf-8"),
    "settings": ("settings.html", "text/html; charset=utf-8"),
    "app.css": ("app.css", "text/css"),
    "app.js": ("app.js", "text/javascript"),
}

try:
    _DIR = __file__.rsplit("/", 1)[0] + "/assets"
except NameError:  # a frozen module has no __file__: the deploy layout
    _DIR = "/smartmeter/web/assets"


def asset(name):
    """``(path, content_type)`` of asset ``name`` (a key of :data:`ASSETS`).

    :raises KeyError: for any other name
    """
    file_name, content_type = ASSETS[name]
    return _DIR + "/" + file_name, content_type


_FLASH = []


def flash_fs():
    """The filesystem object (``sd.RealFS`` interface) the assets are read through."""
    if not _FLASH:
        from ..datalog.sd import RealFS

        _FLASH.append(RealFS(fsync=False))
    return _FLASH[0]
