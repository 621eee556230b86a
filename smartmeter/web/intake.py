# SPDX-License-Identifier: MIT
"""Request intake and dispatch for ``web.WebServer``: bounded reads, auth, routing, origin.

Every answer to a bad request carries no file content: 400 (malformed line, bad escape,
traversal segment, bad Content-Length), 401 (no or wrong credentials, checked before anything
else including 404), 403 (cross-site POST), 404, 405 (+ Allow), 408 (too slow), 411 (chunked
request body), 413 (body over the cap), 431 (head over the cap).
"""

import binascii

from adafruit_httpserver import Response
from adafruit_httpserver.request import Request

from ..netutil import would_block
from ..timeutil import ticks_diff
from .files import unquote

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


HEADER_MAX = const(4096)  # request line + headers; a browser sends < 1 KiB
_BODY_MAX = const(4096)  # form bodies (settings, delete); uploads are streamed
_RECV_MS = const(1000)  # whole request head must arrive within this
_RECV_STEP_S = 0.05  # socket wait per step while receiving (service() between steps)

_REASONS = {
    200: "OK",
    201: "Created",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}


def _same(a, b):
    """Compare bytes in time independent of where they differ."""
    diff = len(a) ^ len(b)
    for i in range(len(b)):
        diff |= (a[i] if i < len(a) else 0) ^ b[i]
    return diff == 0


def _parent(path):
    path = path.rstrip("/")
    return path[: path.rfind("/")] if "/" in path else ""


def reply_raw(sock, code, text="", ctype="text/plain; charset=utf-8"):
    """Send a complete small response on ``sock`` (used where no Request object exists)."""
    body = text.encode()
    head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        code,
        _REASONS.get(code, "Error"),
        ctype,
        len(body),
    )
    mv = memoryview((head + "Connection: close\r\n\r\n").encode() + body)
    try:
        sock.settimeout(1)
        while mv:
            n = sock.send(mv)
            if not n:
                break
            mv = mv[n:]
    except OSError:
        pass


def text(request, code, message, headers=None):
    """A small plain-text response."""
    return Response(
        request,
        message,
        status=(code, _REASONS.get(code, "Error")),
        headers=headers,
        content_type="text/plain; charset=utf-8",
    )


def json_response(request, body, code=200):
    """A JSON response from ready JSON text."""
    return Response(
        request, body, status=(code, _REASONS.get(code, "Error")), content_type="application/json"
    )


def _reject(web, sock, code, message):
    web.requests += 1
    web.errors += 1
    reply_raw(sock, code, message)


def _recv(web, sock, mv, start):
    """One bounded wait for bytes: count, 0 on close, None when the deadline passed."""
    while True:
        try:
            return sock.recv_into(mv, len(mv))
        except OSError as exc:
            if not would_block(exc):
                raise
        if ticks_diff(web.ticks(), start) >= _RECV_MS:
            return None
        web.service_between()


def receive(web, server, sock, client_address):
    """Read one request head (and a small body) within the size and time caps.

    :returns: a Request, or None when the request was answered here (error) or dropped (the
        caller closes the socket; a reset client must not leak one of the ESP32's 8 sockets)
    """
    try:
        return _receive(web, server, sock, client_address)
    except OSError as exc:
        web.failed(exc)
        return None


def _receive(web, server, sock, client_address):
    buf = web._head
    mv = memoryview(buf)
    start = web.ticks()
    sock.settimeout(_RECV_STEP_S)
    n = 0
    end = -1
    while end < 0:
        if n >= HEADER_MAX:
            return _reject(web, sock, 431, "request head too large")
        got = _recv(web, sock, mv[n:], start)
        if got is None:
            return _reject(web, sock, 408, "request timeout") if n else None
        if not got:
            return None  # closed before a complete head: nothing to answer
        lo = n - 3 if n > 3 else 0
        n += got
        i = bytes(mv[lo:n]).find(b"\r\n\r\n")
        if i >= 0:
            end = lo + i
    head = bytes(mv[:end])
    early = bytes(mv[end + 4 : n])
    line, _, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    if (
        len(parts) != 3
        or not parts[1].startswith(b"/")
        or not parts[2].startswith(b"HTTP/1.")
        or not parts[0].isalpha()
        or not rest
    ):
        return _reject(web, sock, 400, "malformed request line")
    try:
        request = Request(server, sock, client_address, head + b"\r\n\r\n")
        target = parts[1].decode()
        raw_path, _, query = target.partition("?")
        path = unquote(raw_path)
        args = {}
        for pair in query.split("&"):
            if pair:
                key, _, value = pair.partition("=")
                args[unquote(key, True)] = unquote(value, True)
    except (ValueError, UnicodeError):
        return _reject(web, sock, 400, "malformed request")
    if "\\" in path or "\x00" in path or "/./" in path + "/" or "/../" in path + "/":
        return _reject(web, sock, 400, "bad path")
    request.path = path
    request.args = args
    headers = request.headers
    if headers.get("Transfer-Encoding") is not None:
        return _reject(web, sock, 411, "chunked bodies are not accepted")
    lengths = headers.get_list("Content-Length")
    length = None
    if lengths:
        text_len = lengths[0].strip()
        if (
            not text_len.isdigit()
            or len(text_len) > 12
            or any(v.strip() != text_len for v in lengths)
        ):
            return _reject(web, sock, 400, "bad Content-Length")
        length = int(text_len)
    request.length = length
    if request.method == "POST" and path == "/upload":
        request.early = early  # the body goes to the card in slices, never into RAM
        sock.settimeout(1)
        return request
    length = length or 0
    if length > _BODY_MAX:
        return _reject(web, sock, 413, "body too large")
    body = bytearray(length)
    have = min(len(early), length)
    body[:have] = early[:have]
    bmv = memoryview(body)
    while have < length:
        got = _recv(web, sock, bmv[have:], start)
        if got is None:
            return _reject(web, sock, 408, "request timeout")
        if not got:
            return None
        have += got
    request.body = bytes(body)
    sock.settimeout(1)
    return request


def authorized(web, request):
    """HTTP Basic credentials match WEB_USER and the web password."""
    value = request.headers.get("Authorization")
    if not value:
        return False
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = binascii.a2b_base64(token.strip())
    except Exception:  # noqa: BLE001 - binascii.Error / ValueError on bad base64
        return False
    return _same(given, web._expected)


def same_origin(request):
    """Refuse cross-site POSTs: Origin (or Referer) must name this host.

    Browsers send Origin with every POST; a request with neither header is not from a web page
    (curl, scripts) and still needs the credentials.
    """
    headers = request.headers
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    host = headers.get("Host")
    origin = headers.get("Origin")
    if origin is not None:
        return host is not None and origin == "http://" + host
    referer = headers.get("Referer")
    if referer is not None:
        return host is not None and (referer + "/").startswith("http://" + host + "/")
    return True
