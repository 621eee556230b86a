# SPDX-License-Identifier: MIT
"""Route handlers of the web interface (``web.WebServer``) and the dispatcher.

Handlers take ``(web, request[, arg])`` and return a Response; ``@with_card`` hands a handler
the SD filesystem (or answers 503), ``_busy`` answers 503 while the transfer slots are taken.
File handlers only ever open ``LOG_DIR/<name>`` with a name that passed ``web_files.safe_name``
and is a regular file; pages and script come from flash by a fixed name (``pages.ASSETS``).
"""

from .. import overrides
from ..datalog.sd import OWN_NAMES, is_own_name
from . import api as web_api
from . import files as web_files
from . import pages as web_pages
from .intake import authorized, json_response, same_origin, text

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_UPLOAD_RESERVE = const(1048576)  # free space an upload must leave on the card


def _lang(web):
    return web.config.UI_LANGUAGE


def _fs(web):
    """The filesystem when the card is usable, else None."""
    st = web.storage
    if st is None or st.fs is None or st.state not in ("ok", "full"):
        return None
    return st.fs


def with_card(handler):
    """``handler(web, request, fs[, arg])`` called only when the SD card is usable, else 503."""

    def wrapped(web, request, *arg):
        fs = _fs(web)
        if fs is None:
            return text(request, 503, "SD card not available")
        return handler(web, request, fs, *arg)

    return wrapped


def _busy(web, request, spare=0):
    """The 503 answer when no further transfer may start now (``spare`` extra slots), else None."""
    if web.busy(spare):
        return text(request, 503, "busy", {"Retry-After": "5"})
    return None


# -- pages ----------------------------------------------------------------------------------
_ASSET_SPARE = const(2)  # pages load app.css and app.js at once: two slots beyond downloads


def _asset(web, request, name):
    """Stream asset ``name`` (a key of ``pages.ASSETS``) from flash."""
    path, ctype = web_pages.asset(name)
    fs = web_pages.flash_fs()
    size = web_files.file_size(fs, path)
    if size is None:
        return text(request, 500, "page missing on flash: " + name)
    refused = _busy(web, request, _ASSET_SPARE)
    if refused is not None:
        return refused
    buf = web.take_buffer()
    chunks = web_files.file_chunks(fs, [(path, 0, size)], buf)
    return web.stream(request, chunks, size, ctype, None, buf)


def page_home(web, request):
    return _asset(web, request, "settings" if web.state.ap_mode else "home")


def page_usage(web, request):
    return _asset(web, request, "usage")


def page_files(web, request):
    return _asset(web, request, "files")


def page_settings(web, request):
    return _asset(web, request, "settings")


def app_css(web, request):
    return _asset(web, request, "app.css")


def app_js(web, request):
    return _asset(web, request, "app.js")


def logout(web, request):
    return text(
        request,
        401,
        "logged out",
        {"WWW-Authenticate": 'Basic realm="smartmeter", charset="UTF-8"'},
    )


# -- API ------------------------------------------------------------------------------------
def api_now(web, request):
    from ..timeutil import ticks_diff

    return json_response(request, web_api.now_json(web.state, web.ticks(), ticks_diff))


def api_status(web, request):
    from ..timeutil import ticks_diff

    body = web_api.status_json(web.state, _lang(web), web.ticks(), ticks_diff)
    return json_response(request, body)


def api_history(web, request):
    try:
        minutes = int(request.args.get("minutes", "60"))
    except ValueError:
        return text(request, 400, "minutes must be a whole number")
    refused = _busy(web, request)
    if refused is not None:
        return refused
    return web.stream(request, web_api.history_chunks(web.state, minutes))


def _usage(web, request, respond):
    """``respond(resolution)`` for ``?resolution=quarter|hour|day|month``; 400 or 503
    otherwise."""
    from .usageapi import RESOLUTIONS

    res = request.args.get("resolution", "day")
    if res not in RESOLUTIONS:
        return text(request, 400, "resolution must be quarter, hour, day or month")
    refused = _busy(web, request)
    if refused is not None:
        return refused
    return respond(res)


def api_usage(web, request):
    from .usageapi import json_chunks

    return _usage(web, request, lambda res: web.stream(request, json_chunks(web.state, res)))


def api_usage_csv(web, request):
    from .usageapi import csv_chunks

    def stream(res):
        headers = {"Content-Disposition": 'attachment; filename="usage-%s.csv"' % res}
        chunks = csv_chunks(web.state, res, web.config.CSV_DIALECT)
        return web.stream(request, chunks, None, "text/csv", headers)

    return _usage(web, request, stream)


def api_settings(web, request):
    return json_response(request, web_api.settings_json(web.config))


@with_card
def api_files(web, request, fs):
    refused = _busy(web, request)
    if refused is not None:
        return refused
    names = [n for n in web_files.list_names(fs, web.log_dir) if _file_path(web, fs, n)]
    return web.stream(request, web_files.listing_chunks(fs, web.log_dir, names))


# -- files ----------------------------------------------------------------------------------
def _file_path(web, fs, name):
    """Absolute path of a servable file ``name`` in LOG_DIR, or None.

    Never a settings or password file, whatever LOG_DIR is (``LOG_DIR = "/sd"`` included).
    """
    if not web_files.safe_name(name):
        return None
    path = web.log_dir + "/" + name
    low = path.lower()  # FAT ignores case: /sd/SMARTMETER.TOML is the same file
    for private in web.private:
        private = private.lower()
        if low == private or low.startswith(private + "/"):
            return None
    return path


@with_card
def download_day(web, request, fs, name):
    path = _file_path(web, fs, name)
    size = web_files.file_size(fs, path) if path else None
    if size is None:
        return text(request, 404, "not found")
    refused = _busy(web, request)
    if refused is not None:
        return refused
    buf = web.take_buffer()
    ctype = "text/csv" if name.endswith(".csv") else "application/octet-stream"
    headers = {"Content-Disposition": 'attachment; filename="%s"' % name}
    chunks = web_files.file_chunks(fs, [(path, 0, size)], buf)
    return web.stream(request, chunks, size, ctype, headers, buf)


@with_card
def download_month(web, request, fs, arg):
    month = arg[:-4] if arg.endswith(".csv") else ""
    if len(month) != 7 or month[4] != "-" or not (month[:4] + month[5:]).isdigit():
        return text(request, 404, "not found")
    parts = web_files.month_parts(fs, web.log_dir, month)
    if not parts:
        return text(request, 404, "no files for this month")
    refused = _busy(web, request)
    if refused is not None:
        return refused
    total = 0
    for part in parts:
        total += part[2]
    buf = web.take_buffer()
    headers = {"Content-Disposition": 'attachment; filename="%s.csv"' % month}
    return web.stream(
        request, web_files.file_chunks(fs, parts, buf), total, "text/csv", headers, buf
    )


@with_card
def delete(web, request, fs):
    try:
        name = web_files.parse_form(request.body).get("name", "")
    except (ValueError, UnicodeError):
        return text(request, 400, "bad form")
    path = _file_path(web, fs, name)
    if path is None or web_files.file_size(fs, path) is None:
        return text(request, 404, "not found")
    low = name.lower()
    writing = getattr(web.storage, "writing", None)
    if (writing and low == writing.lower()) or low in OWN_NAMES:
        return text(request, 409, "this file is being written")
    fs.remove(path)
    return json_response(request, '{"deleted":"%s"}' % name)


@with_card
def upload(web, request, fs):
    length = request.length
    if length is None:
        return text(request, 411, "Content-Length required")
    name = web_files.clean_upload_name(request.args.get("name", ""))
    path = _file_path(web, fs, name) if name else None
    if path is None:
        return text(request, 400, "bad file name")
    if is_own_name(name):
        return text(request, 400, "this name is reserved for the meter log")
    if web_files.file_size(fs, path) is not None or _exists(fs, path):
        return text(request, 409, "a file with this name exists")
    if web.uploading():
        return text(request, 503, "another upload is running", {"Retry-After": "5"})
    try:
        free = web.storage.refresh_space()
        # What retention keeps free (LOG_MIN_FREE_MB) and a month of logging: the logs do not
        # need the room back for a month, and then retention deletes uploads before log days.
        reserve = max(_UPLOAD_RESERVE, web.storage.reserve())
    except OSError:
        return text(request, 503, "SD card not available")
    if length + reserve > free:
        return text(
            request,
            507,
            "not enough free space: an upload must leave LOG_MIN_FREE_MB and a month of logging",
        )
    refused = _busy(web, request)
    if refused is not None:
        return refused
    up = web_files.Upload(fs, path, length, request.early)
    return web.receive_upload(request, up, name)


def _exists(fs, path):
    try:
        fs.stat(path)
        return True
    except OSError:
        return False


# -- actions --------------------------------------------------------------------------------
@with_card
def save_settings(web, request, fs):
    try:
        form = web_files.parse_form(request.body)
    except (ValueError, UnicodeError):
        return text(request, 400, "bad form")
    import json

    current = overrides.load(fs)  # a damaged or unreadable file counts as empty
    merged, changed, problems = web_api.apply_settings(form, current.values)
    if problems:
        return json_response(request, json.dumps({"saved": False, "problems": problems}), 400)
    try:
        overrides.save(fs, merged, current)
    except ValueError as exc:
        return text(request, 413, str(exc))

    return json_response(request, json.dumps({"saved": True, "changed": changed, "reboot": True}))


def reboot(web, request):
    web.actions.restart()
    return json_response(request, '{"restarting":true}')


def setup(web, request):
    web.actions.setup_mode()
    return json_response(request, '{"setup_mode":true}')


ROUTES = {
    "/": {"GET": page_home},
    "/usage": {"GET": page_usage},
    "/files": {"GET": page_files},
    "/settings": {"GET": page_settings, "POST": save_settings},
    "/app.css": {"GET": app_css},
    "/app.js": {"GET": app_js},
    "/api/now": {"GET": api_now},
    "/api/status": {"GET": api_status},
    "/api/history": {"GET": api_history},
    "/api/usage": {"GET": api_usage},
    "/api/usage.csv": {"GET": api_usage_csv},
    "/api/files": {"GET": api_files},
    "/api/settings": {"GET": api_settings},
    "/delete": {"POST": delete},
    "/upload": {"POST": upload},
    "/reboot": {"POST": reboot},
    "/setup": {"POST": setup},
    "/logout": {"GET": logout},
}
PREFIXES = (("/logs/", {"GET": download_day}), ("/month/", {"GET": download_month}))


def dispatch(web, request):
    """Answer one request; counts requests and errors (401 is not an error: browsers ask)."""
    web.requests += 1
    try:
        response = _route(web, request)
    except Exception as exc:  # noqa: BLE001 - a handler fault answers 500, the loop runs on
        web.failed(exc)
        return text(request, 500, "internal error")
    code = response._status.code
    if code >= 400 and code != 401:
        web.errors += 1
    return response


def _route(web, request):
    if not web.host_ok(request):
        # DNS rebinding: a web page elsewhere may resolve its own name to this board's address
        web.refused_host += 1
        return text(request, 421, "this board does not answer to that host name")
    now = web.wall()
    given = request.headers.get("Authorization")
    wait = web.throttle_left(request, now)
    if not wait and given:
        wait = web.guess_wait(request, now)  # wrong passwords from anywhere: the pace in all
    if wait:
        # answered at once, without checking the password
        web.refused()
        retry = {"Retry-After": str(wait // 1000 + 1)}
        return text(request, 429, "too many wrong passwords: try again later", retry)
    if not authorized(web, request):
        if given:
            web.auth_failed(request, now)
        return text(
            request,
            401,
            "authentication required",
            {"WWW-Authenticate": 'Basic realm="smartmeter", charset="UTF-8"'},
        )
    web.auth_ok(request)
    path = request.path
    methods = ROUTES.get(path)
    arg = None
    if methods is None:
        for prefix, table in PREFIXES:
            if path.startswith(prefix):
                methods = table
                arg = path[len(prefix) :]
                break
    if methods is None:
        return text(request, 404, "not found")
    handler = methods.get(request.method)
    if handler is None:
        return text(request, 405, "method not allowed", {"Allow": ", ".join(methods)})
    if request.method == "POST" and not same_origin(request):
        return text(request, 403, "cross-site request refused")
    if arg is None:
        return handler(web, request)
    return handler(web, request, arg)
