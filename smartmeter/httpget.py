# SPDX-License-Identifier: MIT
"""One HTTP GET that runs across loop passes: each call does a slice of work, never waits.

Why not ``adafruit_requests`` (``httpio``): it waits inside its calls, so a server that trickles
its answer or says nothing holds the loop for as long as the deadline allows. Here the socket is
non-blocking and :meth:`HttpGet.step` does at most ``budget_ms`` of work per call - connect, send
the request, read what has arrived - and returns; the caller calls it again on the next pass.
The whole request still has an overall deadline (``start(..., deadline_ms)``), counted by the
app's clock across calls.

Only DNS (``getaddrinfo``) waits, as in every output. https: the TCP connect runs across passes
as for http; the TLS handshake too where the TLS layer can pause (CPython:
``do_handshake_on_connect=False``, then ``do_handshake()`` until it stops asking to wait).
CircuitPython's ``SSLSocket.connect`` runs the whole handshake inside one call; there it talks
to the socket through :class:`netutil.Bounded`, which ends the handshake with ETIMEDOUT once it
has had to wait for the server after ``tls_ms``: a server that trickles or withholds its handshake
holds that one pass at most ``tls_ms`` (the handshake's own computing is not cut short).

Socket semantics covered (CircuitPython ``socketpool`` and CPython's ``socket``): a non-blocking
``connect`` raises EINPROGRESS (CPython) or ETIMEDOUT (CircuitPython, timeout 0) and, asked again,
EALREADY while under way and EISCONN (or nothing) once connected; ``recv_into`` raises EAGAIN
when nothing is there, and at the end CircuitPython raises ENOTCONN where CPython returns 0; TLS
sockets raise want-read/want-write.

The request is HTTP/1.0 with ``Connection: close``: the answer cannot be chunked, and it ends
with its ``Content-Length`` or the connection. No redirect is followed: any status but 200 is an
:class:`HttpError` (a 3xx says so). The header is read into a buffer of at most ``_HEAD_MAX``
bytes; the body goes, a receive buffer at a time, to the caller's ``on_body(memoryview)``.
"""

from .netutil import (
    EALREADY_CODES,
    EISCONN_CODES,
    ENOTCONN_CODES,
    ETIMEDOUT,
    errno_of,
    start_tls,
    would_block,
)
from .timeutil import ticks_add, ticks_diff

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_HEAD_MAX = const(2048)  # status line and headers
_IDLE = const(0)
_CONNECT = const(1)
_SEND = const(2)
_HEAD = const(3)
_BODY = const(4)
_TLS = const(5)


class HttpError(Exception):
    """The server answered, but not with what was asked (``code``: the HTTP status or 0)."""

    def __init__(self, text, code=0):
        super().__init__(text)
        self.code = code


def split_url(url):
    """``"http://host:port/path?q"`` -> ``(tls, host, port, "/path?q")``. ValueError if bad."""
    if url.startswith("https://"):
        tls, rest, port = True, url[8:], 443
    elif url.startswith("http://"):
        tls, rest, port = False, url[7:], 80
    else:
        raise ValueError("the URL must start with http:// or https://")
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    if "@" in hostport or not hostport:
        raise ValueError("no host in the URL")
    if ":" in hostport:
        hostport, _, num = hostport.rpartition(":")
        if not num.isdigit() or not 0 < int(num) < 65536:
            raise ValueError("bad port in the URL")
        port = int(num)
    return tls, hostport, port, path


def _status(head):
    """The HTTP status code of an answer header (bytes up to the blank line)."""
    line = bytes(head[: head.find(b"\r\n")])
    parts = line.split(b" ")
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise HttpError("not an HTTP answer")
    return int(parts[1])


def _length(head):
    """Content-Length of the header, or None; HttpError for a chunked (HTTP/1.1) body."""
    length = None
    for line in bytes(head).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit() or len(value) > 9:
                raise HttpError("bad Content-Length")
            length = int(value)
        elif name == b"transfer-encoding" and value.lower() != b"identity":
            raise HttpError("chunked answer to an HTTP/1.0 request")
    return length


class HttpGet:
    """One GET at a time: :meth:`start`, then :meth:`step` every pass until it returns True.

    :param pool: socket pool (``socketpool.SocketPool`` or CPython's ``socket`` module)
    :param ticks_ms: the app's wrapping ms clock
    :param ssl_context: for https (default: ``ssl.create_default_context()``)
    :ivar bytes_in: body bytes of this answer so far
    """

    def __init__(self, pool, ticks_ms, ssl_context=None, chunk=512):
        self.pool = pool
        self.ticks_ms = ticks_ms
        self.ssl_context = ssl_context
        self._buf = bytearray(chunk)
        self._mv = memoryview(self._buf)
        self.sock = None
        self.phase = _IDLE
        self._head = None
        self._req = b""
        self._sent = 0
        self._addr = None
        self._left = None  # body bytes still to come (Content-Length), None: until closed
        self.bytes_in = 0
        self.end = 0
        self.deadline_ms = 0

    @property
    def busy(self):
        return self.phase != _IDLE

    def start(self, url, deadline_ms, tls_ms=1000):
        """Resolve, open a socket and begin to connect (no wait but DNS).

        :param deadline_ms: the whole request, across calls of :meth:`step`
        :param tls_ms: https on CircuitPython: how long the handshake may wait for the server
        :raises OSError: DNS, socket or connect failure; ValueError: a bad URL
        """
        self.close()
        tls, host, port, path = split_url(url)
        self.deadline_ms = deadline_ms
        self.end = ticks_add(self.ticks_ms(), deadline_ms)
        self._req = (
            b"GET %s HTTP/1.0\r\nHost: %s\r\nAccept: application/json\r\n"
            b"User-Agent: smartmeter\r\nConnection: close\r\n\r\n" % (path.encode(), host.encode())
        )
        self._sent = 0
        self._head = bytearray()
        self._left = None
        self.bytes_in = 0
        self._host = host if tls else None
        self._tls_ms = tls_ms
        self._wrapped = False
        pool = self.pool
        stream = getattr(pool, "SOCK_STREAM", 1)
        info = pool.getaddrinfo(host, port, 0, stream)[0]
        self._addr = info[-1]
        sock = pool.socket(info[0], stream)
        self.sock = sock
        try:
            sock.settimeout(0)
            self.phase = _CONNECT
            self._connect()
        except BaseException:
            self.close()
            raise

    def close(self):
        """Drop the connection (idempotent, never raises)."""
        sock = self.sock
        self.sock = None
        self.phase = _IDLE
        self._head = None
        if sock is not None:
            try:
                sock.close()
            except Exception:  # noqa: BLE001, S110 - gone either way
                pass

    def step(self, on_body, budget_ms):
        """Do at most ``budget_ms`` of work. True when the whole answer is in (then closed).

        :param on_body: called with each piece of the body (a memoryview, valid during the call)
        :raises OSError: network failure, or ETIMEDOUT once the overall deadline has passed;
            :class:`HttpError`: a status other than 200, a bad header, a cut-short body.
            The connection is closed on every exception.
        """
        try:
            done = self._work(on_body, budget_ms)
        except BaseException:
            self.close()
            raise
        if done:
            self.close()
            return True
        if ticks_diff(self.ticks_ms(), self.end) >= 0:
            self.close()
            raise OSError(ETIMEDOUT, "timed out: no whole answer within %d ms" % self.deadline_ms)
        return False

    def _work(self, on_body, budget_ms):
        t0 = self.ticks_ms()
        while ticks_diff(self.ticks_ms(), t0) < budget_ms:
            phase = self.phase
            if phase == _CONNECT:
                if not self._connect():
                    return False
            elif phase == _TLS:
                if not self._handshake():
                    return False
            elif phase == _SEND:
                if not self._send():
                    return False
            elif phase in (_HEAD, _BODY):
                n = self._recv()
                if n is None:
                    return False
                if n == 0:
                    return self._closed()
                if self._take(n, on_body):
                    return True
            else:
                raise HttpError("no request")
        return False

    def _connect(self):
        try:
            self.sock.connect(self._addr)
        except OSError as exc:
            code = errno_of(exc)
            if code in EISCONN_CODES:
                pass
            elif code in EALREADY_CODES or would_block(exc):
                return False
            else:
                raise
        self.phase = _SEND if self._host is None else _TLS
        return True

    def _handshake(self):
        """TLS over the connected socket; True when done."""
        if not self._wrapped:
            self._wrapped = True
            context = self.ssl_context
            if context is None:
                import ssl

                context = self.ssl_context = ssl.create_default_context()
            if start_tls(self, context, self._host, self._addr, self.ticks_ms, self._tls_ms):
                self.phase = _SEND  # CircuitPython: the handshake ran in start_tls
                return True
        try:
            self.sock.do_handshake()
        except OSError as exc:
            if would_block(exc):
                return False
            raise
        self.phase = _SEND
        return True

    def _send(self):
        req = self._req
        try:
            n = self.sock.send(memoryview(req)[self._sent :])
        except OSError as exc:
            if would_block(exc):
                return False
            raise
        if n is None:  # some ports return None for "all of it"
            n = len(req) - self._sent
        if n <= 0:
            return False
        self._sent += n
        if self._sent >= len(req):
            self.phase = _HEAD
        return True

    def _recv(self):
        """Bytes read into the buffer; 0 at the end of the answer; None: nothing yet."""
        try:
            return self.sock.recv_into(self._buf)
        except OSError as exc:
            if errno_of(exc) in ENOTCONN_CODES:
                return 0  # CircuitPython: the peer closed a non-blocking socket
            if would_block(exc):
                return None
            raise

    def _take(self, n, on_body):
        """``n`` new bytes in the buffer; True when the answer is complete."""
        if self.phase == _HEAD:
            head = self._head
            had = len(head)
            head += self._mv[:n]
            end = head.find(b"\r\n\r\n", had - 3 if had > 3 else 0)
            if end < 0:
                if len(head) > _HEAD_MAX:
                    raise HttpError("answer header too long")
                return False
            code = _status(head)
            if 300 <= code < 400:
                raise HttpError("HTTP %d: a redirect, not followed" % code, code)
            if code != 200:
                raise HttpError("HTTP %d" % code, code)
            self._left = _length(head[:end])
            self.phase = _BODY
            first = end + 4 - had  # where the body starts in the buffer
            self._head = None
            if first < n:
                return self._body(self._mv[first:n], on_body)
            return self._left == 0
        return self._body(self._mv[:n], on_body)

    def _body(self, data, on_body):
        left = self._left
        if left is not None and len(data) >= left:
            data = data[:left]  # anything after the announced length is not ours
        self.bytes_in += len(data)
        if len(data):
            on_body(data)
        if left is None:
            return False
        self._left = left - len(data)
        return self._left == 0

    def _closed(self):
        """The server closed the connection: the end of the answer, if it was whole."""
        if self.phase == _HEAD:
            raise HttpError("connection closed before the answer")
        if self._left:
            raise HttpError("answer cut short")
        return True
