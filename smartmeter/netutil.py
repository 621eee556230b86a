# SPDX-License-Identifier: MIT
"""Socket error helpers shared by the outputs and the web server: one errno vocabulary.

Numbers are Linux/lwIP's (CircuitPython and MicroPython use them on every port); where the
``errno`` module knows a name (CPython on another OS) its value wins.
"""

from .oserrors import errno_of
from .timeutil import ticks_add, ticks_diff

try:
    import errno as _errno
except ImportError:  # a port without the module
    _errno = None


def _code(name, default):
    return getattr(_errno, name, default) if _errno is not None else default


EAGAIN = _code("EAGAIN", 11)
ETIMEDOUT = _code("ETIMEDOUT", 110)
ECONNREFUSED = _code("ECONNREFUSED", 111)
ECONNRESET = _code("ECONNRESET", 104)
# "try again later": EAGAIN/EWOULDBLOCK (11, 35 on BSD), ETIMEDOUT, EINPROGRESS/EALREADY (115,
# 114 Linux; MicroPython's lwIP reports 116/119 on some ports)
EAGAIN_CODES = tuple({EAGAIN, ETIMEDOUT, 11, 35, 110, 116, 119})


EINPROGRESS = _code("EINPROGRESS", 115)
_WANT = ("SSLWantReadError", "SSLWantWriteError")  # TLS: the record is not complete yet


def would_block(exc):
    """True for a socket error that means "nothing yet, try again" (incl. a bare timeout, a
    connect still in progress and a TLS record not yet complete)."""
    if not isinstance(exc, OSError):
        return False
    if type(exc).__name__ in _WANT:
        return True
    code = errno_of(exc)
    return code is None or code in EAGAIN_CODES or code == EINPROGRESS


def timed_out(exc):
    """True for a timeout, whatever the port calls it."""
    return errno_of(exc) in EAGAIN_CODES or "timed" in str(exc) or "timeout" in str(exc)


# A non-blocking connect, asked again: still under way (EALREADY: Linux 114, BSD 37, ESP-IDF's
# newlib 120), or done (EISCONN: 106, 56, 127). A non-blocking read of a socket the peer closed:
# CircuitPython raises ENOTCONN (107, 57, 128) where CPython returns 0.
EALREADY_CODES = tuple({_code("EALREADY", 114), 114, 37, 120})
EISCONN_CODES = tuple({_code("EISCONN", 106), 106, 56, 127})
ENOTCONN_CODES = tuple({_code("ENOTCONN", 107), 107, 57, 128})


class Bounded:
    """A connected non-blocking socket as CircuitPython's TLS layer sees it (it calls these
    methods by name): ``connect`` is done already; while ``end`` is set, a read or write that
    would have to wait after ``end`` raises ETIMEDOUT, which ends the handshake.

    CircuitPython's ``SSLSocket.connect`` runs the whole handshake in one call, waiting 1 ms
    and trying again on EAGAIN: wrapped around this, a server that trickles or withholds its
    handshake holds that call only until ``end`` (used by ``httpget`` and the MQTT client)."""

    type = 1  # SOCK_STREAM: checked by ssl.wrap_socket

    def __init__(self, sock, ticks_ms):
        self.sock = sock
        self.ticks_ms = ticks_ms
        self.end = None

    def _late(self, exc):
        end = self.end
        if end is not None and would_block(exc) and ticks_diff(self.ticks_ms(), end) >= 0:
            return OSError(ETIMEDOUT, "TLS handshake timed out")
        return exc

    def connect(self, _addr):
        return None

    def recv_into(self, buf, nbytes=0):
        try:
            return self.sock.recv_into(buf, nbytes or len(buf))
        except OSError as exc:
            raise self._late(exc)

    def send(self, data):
        try:
            return self.sock.send(data)
        except OSError as exc:
            raise self._late(exc)

    def settimeout(self, timeout):
        self.sock.settimeout(timeout)

    def setsockopt(self, *args):
        return self.sock.setsockopt(*args)

    def close(self):
        self.sock.close()

    def accept(self):
        raise OSError(95)  # EOPNOTSUPP: a client socket

    def bind(self, _addr):
        raise OSError(95)

    def listen(self, _backlog):
        raise OSError(95)


def start_tls(conn, context, host, sockaddr, ticks_ms, wait_ms):
    """Wrap ``conn.sock`` (connected, non-blocking) for TLS with ``context``; ``conn.sock`` is
    the TLS socket afterwards (closed with ``conn`` if the handshake fails).

    CPython: the handshake is left to the caller's ``do_handshake()`` calls (it can pause).
    CircuitPython (``wrap_socket`` takes no ``do_handshake_on_connect``): ``connect`` runs all
    of it in one call, through :class:`Bounded`, which ends it once it has to wait for the
    server more than ``wait_ms`` from now.

    :returns: True when the handshake is done, False when it is the caller's to drive
    """
    try:  # CPython: a handshake that can pause
        conn.sock = context.wrap_socket(
            conn.sock, server_hostname=host, do_handshake_on_connect=False
        )
        return False
    except TypeError:  # CircuitPython: connect() does all of the handshake
        bounded = Bounded(conn.sock, ticks_ms)
        ssock = context.wrap_socket(bounded, server_hostname=host)
        conn.sock = ssock
        bounded.end = ticks_add(ticks_ms(), wait_ms)
        ssock.connect(sockaddr)  # the socket is connected: only the handshake runs
        bounded.end = None
        return True
