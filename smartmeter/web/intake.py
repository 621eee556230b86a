# SPDX-License-Identifier: MIT
"""Request intake and dispatch for ``web.WebServer``: bounded reads, auth, routing, origin.

Every answer to a bad request carries no file content: 400 (malformed line, bad escape,
traversal segment, bad Content-Length), 401 (no or wrong credentials, checked before anything
else including 404), 403 (cross-site POST), 404, 405 (+ Allow), 408 (too slow), 411 (chunked
request body), 413 (body over the cap), 421 (Host header names another server), 429 (too many
wrong passwords from this client, or from all together: answered at once, the password is not
checked), 431 (head over the cap).
"""

import binascii

from adafruit_httpserver import Response
from adafruit_httpserver.request import Request

from ..netutil import ETIMEDOUT, would_block
from ..timeutil import ticks_diff
from .files import unquote

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


HEADER_MAX = const(4096)  # request line + headers; a browser sends < 1 KiB
_BODY_MAX = const(4096)  # form bodies (settings, delete); uploads are streamed
_RECV_MS = const(1000)  # whole request head (and small body) must arrive within this
_SEND_S = 0.25  # a small answer fits the socket buffer; a client that reads nothing costs this

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
    421: "Misdirected Request",
    411: "Length Required",
    413: "Content Too Large",
    429: "Too Many Requests",
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
        sock.settimeout(_SEND_S)
        while mv:
            n = sock.send(mv)
            if not n:
                break
            mv = mv[n:]
    except OSError:
        pass


class Reply(Response):
    """adafruit_httpserver's Response whose sends end when the client reads nothing.

    The library's ``_send_bytes`` retries EAGAIN without end. On the board a send that waited
    out the socket's timeout (``_SEND_S``, set before every answer) raises EAGAIN, so one
    client that did not read its answer held the whole loop until it gave up (urllib: 10 s;
    issue 18). Here such a send ends the answer: OSError, the connection is closed.
    """

    def _send_bytes(self, conn, buffer):
        self._size += send_all(conn, buffer)


def send_all(sock, data):
    """Send all of ``data`` on a socket with a timeout; returns the count. Raises OSError
    (ETIMEDOUT) when a send waited its timeout without room (a client that reads nothing)."""
    mv = memoryview(data)
    sent = 0
    while sent < len(mv):
        try:
            n = sock.send(mv[sent:])
        except OSError as exc:
            if would_block(exc):
                raise OSError(ETIMEDOUT, "client reads nothing")  # noqa: B904
            raise
        if not n:
            raise OSError(ETIMEDOUT, "client reads nothing")
        sent += n
    return sent


def text(request, code, message, headers=None):
    """A small plain-text response."""
    return Reply(
        request,
        message,
        status=(code, _REASONS.get(code, "Error")),
        headers=headers,
        content_type="text/plain; charset=utf-8",
    )


def json_response(request, body, code=200):
    """A JSON response from ready JSON text."""
    return Reply(
        request, body, status=(code, _REASONS.get(code, "Error")), content_type="application/json"
    )


def _reject(web, sock, code, message):
    web.requests += 1
    web.errors += 1
    reply_raw(sock, code, message)


class Pending:
    """A connection whose request is still arriving: read without blocking, a pass at a time.

    Every connection has its own deadline (``_RECV_MS`` for the whole head and small body,
    counted from accept), so an idle or slow client (slowloris) costs the others nothing: no
    pass ever waits on a socket.
    """

    def __init__(self, conn, addr, buf, now):
        self.conn = conn
        self.addr = addr
        self.buf = buf  # HEADER_MAX bytes, from the server's pool
        self.n = 0
        self.start = now
        self.request = None
        self.body = None
        self.have = 0


def step(web, server, p, now):
    """Advance ``p``; returns a Request when it is complete, True when it was answered or
    dropped here (the caller closes it), False while it is still arriving."""
    try:
        if p.request is None:
            end = _read_head(web, p)
            if end is None:
                return _deadline(web, p, now)
            if end < 0:
                return True
            request = _parse_target(web, server, p, end)
            if request is None or not _check_length(web, p, request, end):
                return True
            if request.method == "POST" and request.path == "/upload":
                return request  # the body goes to the card in slices, never into RAM
            p.request = request
        done = _read_body(web, p)
        if done is None:
            return _deadline(web, p, now)
        if not done:
            return True
        p.request.body = bytes(p.body)
        return p.request
    except OSError as exc:
        web.failed(exc)
        return True


def _deadline(web, p, now):
    if ticks_diff(now, p.start) < _RECV_MS:
        return False
    if p.n:
        _reject(web, p.conn, 408, "request timeout")
    return True  # an idle connection that never sent a byte is just closed


def _recv_now(sock, mv):
    """Bytes available now: count, 0 on close, None when nothing is there yet."""
    try:
        return sock.recv_into(mv, len(mv))
    except OSError as exc:
        if would_block(exc):
            return None
        raise


def _read_head(web, p):
    """Read what arrived; the index of the blank line ending the head, None while incomplete,
    -1 when the connection was answered (431) or closed."""
    mv = memoryview(p.buf)
    while True:
        n = p.n
        if n >= HEADER_MAX:
            _reject(web, p.conn, 431, "request head too large")
            return -1
        got = _recv_now(p.conn, mv[n:])
        if got is None:
            return None
        if not got:
            return -1  # closed before a complete head: nothing to answer
        lo = n - 3 if n > 3 else 0
        p.n = n + got
        i = bytes(mv[lo : p.n]).find(b"\r\n\r\n")
        if i >= 0:
            return lo + i


def _parse_target(web, server, p, end):
    """The Request of a complete head (path percent-decoded and checked), or None (answered)."""
    sock = p.conn
    head = bytes(memoryview(p.buf)[:end])
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
        request = Request(server, sock, p.addr, head + b"\r\n\r\n")
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
    return request


def _check_length(web, p, request, end):
    """Content-Length rules; prepares the body buffer. False when answered (400/411/413)."""
    sock = p.conn
    headers = request.headers
    if headers.get("Transfer-Encoding") is not None:
        _reject(web, sock, 411, "chunked bodies are not accepted")
        return False
    lengths = headers.get_list("Content-Length")
    length = None
    if lengths:
        text_len = lengths[0].strip()
        if (
            not text_len.isdigit()
            or len(text_len) > 12
            or any(v.strip() != text_len for v in lengths)
        ):
            _reject(web, sock, 400, "bad Content-Length")
            return False
        length = int(text_len)
    request.length = length
    early = bytes(memoryview(p.buf)[end + 4 : p.n])
    if request.method == "POST" and request.path == "/upload":
        request.early = early
        return True
    length = length or 0
    if length > _BODY_MAX:
        _reject(web, sock, 413, "body too large")
        return False
    p.body = bytearray(length)
    p.have = min(len(early), length)
    p.body[: p.have] = early[: p.have]
    return True


def _read_body(web, p):
    """True once the small body is complete, None while it is arriving, False when closed."""
    mv = memoryview(p.body)
    while p.have < len(p.body):
        got = _recv_now(p.conn, mv[p.have :])
        if got is None:
            return None
        if not got:
            return False
        p.have += got
    return True


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
