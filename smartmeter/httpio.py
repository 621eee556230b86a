# SPDX-License-Identifier: MIT
"""HTTP through ``adafruit_requests`` that never blocks the loop longer than a deadline.

The library waits on sockets with the timeout it is given, retries, and spins on EAGAIN; none
of that is bounded as a whole. So the library gets a pool whose sockets cap every wait at what
is left of one :class:`Deadline` (armed per request), wait for data in ``step_s`` steps and run
``service`` (the UART pump) between steps and at least every ``service_ms`` while data trickles
in; when the deadline is gone every call raises
``OSError(ETIMEDOUT)``, which the library passes up instead of retrying. Only DNS
(``getaddrinfo``) is outside it. Used by the price fetch and the InfluxDB output.

Usage::

    deadline = Deadline(clock.ticks_ms, service)
    session = httpio.session(pool, deadline, url, ssl_context)
    deadline.arm(1000)
    response = session.post(url, data=body, timeout=0.5)
    ...
    close(session, response)
"""

from .netutil import ETIMEDOUT, timed_out
from .timeutil import ticks_add, ticks_diff


class Deadline:
    """One deadline shared by every socket of a request."""

    def __init__(self, ticks_ms, service=None, step_s=0.2, service_ms=100):
        self.ticks_ms = ticks_ms
        self.service = service
        self.step_s = step_s  # a wait for data is cut into steps this long
        self.service_ms = service_ms  # ... and the UART is drained at least this often
        self.end = None
        self.budget_ms = 0
        self._served = 0

    def arm(self, budget_ms):
        self.budget_ms = budget_ms
        self._served = self.ticks_ms()
        self.end = ticks_add(self._served, budget_ms)

    def serve(self):
        """Run ``service`` (the UART pump) when ``service_ms`` have passed since the last."""
        if self.service is None:
            return
        now = self.ticks_ms()
        if ticks_diff(now, self._served) >= self.service_ms:
            self._served = now
            self.service()

    def left_s(self):
        """Seconds left; raises OSError(ETIMEDOUT) when none are."""
        ms = ticks_diff(self.end, self.ticks_ms())
        if ms <= 0:
            raise OSError(ETIMEDOUT, "took longer than %d ms" % self.budget_ms)
        return ms / 1000


class DeadlineSocket:
    """A socket whose every wait ends at the deadline (the HTTP library sees no change)."""

    def __init__(self, sock, deadline):
        self.sock = sock
        self.dl = deadline
        self.timeout = None
        # CircuitPython's socketpool has no recv (recv_into only), and adafruit_requests picks
        # recv when hasattr(socket, "recv"): offer it only where the socket has it.
        if hasattr(sock, "recv"):
            self.recv = self._recv

    def settimeout(self, timeout):
        self.timeout = timeout

    def _cap(self, step=None):
        left = self.dl.left_s()
        t = self.timeout if self.timeout is not None else left
        if step is not None and step < t:
            t = step
        self.sock.settimeout(t if t < left else left)

    def connect(self, address, *args):
        self._cap()
        return self.sock.connect(address, *args)

    def send(self, data):
        self._cap()
        return self.sock.send(data)

    def _wait(self, fn, *args):
        while True:
            self._cap(self.dl.step_s)
            try:
                got = fn(*args)
            except OSError as exc:
                if not timed_out(exc):
                    raise
                got = None
            self.dl.serve()  # a trickling server must not starve the UART either
            if got is not None:
                return got

    def recv_into(self, buf, nbytes=0):
        return self._wait(self.sock.recv_into, buf, nbytes or len(buf))

    def _recv(self, nbytes):
        return self._wait(self.sock.recv, nbytes)

    def close(self):
        self.sock.close()


class DeadlinePool:
    """The socket pool as the HTTP library sees it: real sockets behind DeadlineSocket."""

    def __init__(self, pool, deadline):
        self.pool = pool
        self.dl = deadline
        self.AF_INET = getattr(pool, "AF_INET", 2)
        self.SOCK_STREAM = getattr(pool, "SOCK_STREAM", 1)

    def getaddrinfo(self, *args):
        self.dl.left_s()
        return self.pool.getaddrinfo(*args)

    def socket(self, *args):
        return DeadlineSocket(self.pool.socket(*args), self.dl)


class DeadlineTls:
    """Wraps the real socket in TLS and the result in DeadlineSocket again."""

    def __init__(self, context, deadline):
        self.context = context
        self.dl = deadline

    def wrap_socket(self, sock, server_hostname=None):
        inner = sock.sock if isinstance(sock, DeadlineSocket) else sock
        wrapped = self.context.wrap_socket(inner, server_hostname=server_hostname)
        return DeadlineSocket(wrapped, self.dl)


def session(pool, deadline, url, ssl_context=None):
    """An ``adafruit_requests.Session`` whose sockets live under ``deadline``.

    :param pool: the real socket pool (wrapped in :class:`DeadlinePool` here)
    :param ssl_context: for an https ``url`` (default: ``ssl.create_default_context()``)
    """
    import adafruit_requests

    context = None
    if url.startswith("https:"):
        if ssl_context is None:
            import ssl

            ssl_context = ssl.create_default_context()
        context = DeadlineTls(ssl_context, deadline)
    return adafruit_requests.Session(DeadlinePool(pool, deadline), context)


def close(session, response, keep=False):
    """Close ``response``; unless ``keep``, close its socket too (no keep-alive).

    Never raises: on any failure the socket is forgotten by the library's connection manager.
    """
    sock = getattr(response, "socket", None)
    try:
        response.close()
    except Exception:  # noqa: BLE001, S110 - the socket goes below either way
        keep = False
    manager = getattr(session, "_connection_manager", None)
    if keep or sock is None or manager is None:
        return
    try:
        manager.close_socket(sock)
    except Exception:  # noqa: BLE001, S110 - already closed/forgotten
        pass


def drop_sockets(session):
    """Close every socket the session's connection manager holds (after a failure)."""
    manager = getattr(session, "_connection_manager", None)
    if manager is None:
        return
    for sock in list(getattr(manager, "_managed_socket_by_key", {}).values()):
        try:
            manager.close_socket(sock)
        except Exception:  # noqa: BLE001, S110 - already closed/forgotten
            pass
