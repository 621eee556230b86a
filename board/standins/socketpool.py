# SPDX-License-Identifier: MIT
"""``socketpool`` stand-in on the VM's ``socket`` module (the host's TCP/IP stack).

Imitates adafruit/circuitpython shared-bindings/socketpool/SocketPool.c and Socket.c with
ports/espressif/common-hal/socketpool/Socket.c and SocketPool.c (ESP32-S3, lwIP):
- ``SocketPool(radio)`` (only ``wifi.radio``: ValueError otherwise); ``socket(family=AF_INET,
  type=SOCK_STREAM, proto=IPPROTO_IP)``; no free socket: RuntimeError("Out of sockets"), with
  CONFIG_LWIP_MAX_SOCKETS = 8 sockets in all (ports/espressif/esp-idf-config/sdkconfig.defaults);
- ``getaddrinfo(host, port, family=0, type=0, proto=0, flags=0)`` gives a list of
  ``(family, type, proto, "", (ip, port))``; failure: ``SocketPool.gaierror`` (an OSError);
- every lwIP socket is non-blocking underneath (O_NONBLOCK); ``settimeout(None/0/t)``:
  blocking / non-blocking / t seconds, done by retrying as Socket.c does;
- ``accept()`` gives ``(socket, (ip, port))``; non-blocking with nothing waiting: OSError(EAGAIN),
  timeout: OSError(ETIMEDOUT); the new socket starts non-blocking (timeout 0);
- ``recv_into(buf, bufsize=0)``: closed socket: OSError(EBADF); blocking: waits, 0 when the
  peer closed; timeout: OSError(ETIMEDOUT); non-blocking with no data: OSError(EAGAIN);
  non-blocking and the peer closed: OSError(ENOTCONN) (and the socket counts as disconnected);
- ``recvfrom_into(buf)`` gives ``(n, (ip, port))``; EAGAIN / ETIMEDOUT as above;
- ``send(b)`` returns the bytes taken (possibly fewer); a full send buffer gives OSError(EAGAIN)
  even on a blocking socket; ``sendall(b)`` loops on ``send`` and lets EAGAIN escape; on a closed
  socket EBADF, on a disconnected one BrokenPipeError; ``sendto(b, (host, port))``;
- ``connect((host, port))``: blocking waits; a timeout gives OSError(ETIMEDOUT) (timeout 0: at
  once); refused: OSError(ECONNREFUSED);
- ``close()`` is idempotent; the context manager closes; there is no ``recv``, ``makefile`` or
  ``fileno`` (CircuitPython "only implements the versions of recv that do not allocate").
The board's addresses (station and access point) are 127.0.0.1 in the box: binding to "" or
"0.0.0.0" binds there, so a board in a box is reachable from this PC only. A dotted address
resolves without a network (lwIP reads it), a name needs the station connected. Errno numbers
are the VM's (Linux) ones; ESP-IDF numbers differ (ETIMEDOUT 116 there): compare ``errno.X``
names, never numbers.
"""

import errno
import select
import socket as _vm

import _box

_vm_time = _box.vm_time  # the VM's ticks (after boot "time" is CircuitPython's)

_MAX_SOCKETS = 8
_open = [0]
_CONNECT_POLL_MS = 100  # SOCKET_CONNECT_POLL_INTERVAL_MS


class _GaiError(OSError):
    pass


def _numeric(host):
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _board_ms():
    return _box.ns() // 1_000_000


def _addr(sockaddr):
    """VM sockaddr bytes -> ("a.b.c.d", port)."""
    _family, ip, port = _vm.sockaddr(sockaddr)
    return ("%d.%d.%d.%d" % tuple(ip), port)


class SocketPool:
    AF_INET = 2
    AF_INET6 = 10
    SOCK_STREAM = 1
    SOCK_DGRAM = 2
    SOCK_RAW = 3
    EAI_NONAME = 200
    SOL_SOCKET = 0xFFF
    SO_REUSEADDR = 0x0004
    TCP_NODELAY = 1
    IPPROTO_IP = 0
    IPPROTO_ICMP = 1
    IPPROTO_TCP = 6
    IPPROTO_UDP = 17
    IPPROTO_IPV6 = 41
    IPPROTO_RAW = 255
    IP_MULTICAST_TTL = 5
    gaierror = _GaiError

    def __init__(self, radio):
        import wifi

        if radio is not wifi.radio:
            raise ValueError("SocketPool can only be used with wifi.radio")
        self._radio = radio

    def socket(self, family=AF_INET, type=SOCK_STREAM, proto=IPPROTO_IP):  # noqa: A002
        if family != SocketPool.AF_INET:
            raise ValueError("Invalid family")  # the box has no IPv6
        if type not in (SocketPool.SOCK_STREAM, SocketPool.SOCK_DGRAM, SocketPool.SOCK_RAW):
            raise ValueError("Invalid socket type")
        if _open[0] >= _box.CONFIG.get("max_sockets", _MAX_SOCKETS):
            raise RuntimeError("Out of sockets")
        return Socket(self, type)

    def _resolve(self, host, port, bind=False):
        if bind and host in ("", "0.0.0.0"):
            # every interface of the board: in the box, station and access point are both
            # 127.0.0.1, so the board is reachable from this PC only
            host = "127.0.0.1"
        try:
            found = _vm.getaddrinfo(host, port)
        except OSError:
            found = None
        # lwIP reads a dotted address without DNS; a name needs the station's DNS server
        if not found or not (bind or _numeric(host) or self._radio.connected):
            raise _GaiError(SocketPool.EAI_NONAME, "Name or service not known")
        return found[0][-1]

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        ip, port = _addr(self._resolve(host, port))
        return [(SocketPool.AF_INET, type, proto, "", (ip, port))]


def _wait(sock, events, deadline_ms):
    """Poll the VM socket until ready or the board-time deadline (None: forever)."""
    p = select.poll()
    p.register(sock, events)
    while True:
        if p.poll(10):
            return True
        if deadline_ms is not None and _board_ms() >= deadline_ms:
            return False


class Socket:
    def __init__(self, pool, type, vm_sock=None, connected=False):  # noqa: A002
        self._pool = pool
        self.type = type
        if vm_sock is None:
            vm_type = _vm.SOCK_STREAM if type == SocketPool.SOCK_STREAM else _vm.SOCK_DGRAM
            vm_sock = _vm.socket(_vm.AF_INET, vm_type)
        vm_sock.setblocking(False)  # lwIP sockets are O_NONBLOCK underneath
        self._s = vm_sock
        self._timeout_ms = None  # None: blocking
        self._connected = connected
        _open[0] += 1

    # -- lifetime ------------------------------------------------------------------------
    def close(self):
        if self._s is None:
            return
        self._connected = False
        try:
            self._s.close()
        finally:
            self._s = None
            _open[0] -= 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __hash__(self):
        return id(self)

    def _live(self):
        if self._s is None:
            raise OSError(errno.EBADF)
        return self._s

    def _deadline(self):
        return None if self._timeout_ms is None else _board_ms() + self._timeout_ms

    # -- settings ------------------------------------------------------------------------
    def settimeout(self, value):
        if value is None:
            self._timeout_ms = None
        else:
            if value < 0:
                raise ValueError("Timeout must be >= 0")
            self._timeout_ms = int(value * 1000)

    def setblocking(self, flag):
        self._timeout_ms = None if flag else 0

    def setsockopt(self, level, optname, value):
        s = self._live()
        if (level, optname) == (SocketPool.SOL_SOCKET, SocketPool.SO_REUSEADDR):
            s.setsockopt(_vm.SOL_SOCKET, _vm.SO_REUSEADDR, value)
        elif (level, optname) == (SocketPool.IPPROTO_TCP, SocketPool.TCP_NODELAY):
            s.setsockopt(6, 1, value)  # Linux IPPROTO_TCP, TCP_NODELAY
        # other options: accepted and ignored (lwIP options the host stack does not share)

    # -- server --------------------------------------------------------------------------
    def bind(self, address):
        host, port = address
        if port < 0:
            raise ValueError("port must be >= 0")
        self._live().bind(self._pool._resolve(host, port, bind=True))

    def listen(self, backlog):
        self._live().listen(backlog)

    def accept(self):
        s = self._live()
        deadline = self._deadline()
        while True:
            try:
                conn, sockaddr = s.accept()
                break
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    raise
            if self._timeout_ms == 0:
                raise OSError(errno.EAGAIN)
            if not _wait(s, select.POLLIN, deadline):
                raise OSError(errno.ETIMEDOUT)
        if _open[0] >= _box.CONFIG.get("max_sockets", _MAX_SOCKETS):
            conn.close()
            raise OSError(errno.EBADF)  # socketpool_socket_accept: register_open_socket failed
        new = Socket(self._pool, self.type, conn, connected=True)
        new._timeout_ms = 0  # accepted sockets start non-blocking
        return new, _addr(sockaddr)

    # -- client --------------------------------------------------------------------------
    def connect(self, address):
        s = self._live()
        host, port = address
        sockaddr = self._pool._resolve(host, port)
        try:
            s.connect(sockaddr)
            self._connected = True
            return
        except OSError as exc:
            if exc.errno not in (errno.EINPROGRESS, errno.EAGAIN):
                raise
        deadline = self._deadline()
        if self._timeout_ms == 0:
            raise OSError(errno.ETIMEDOUT)
        if not _wait(s, select.POLLOUT, deadline):
            raise OSError(errno.ETIMEDOUT)
        # the result of a non-blocking connect: a zero-length send shows a refusal
        try:
            s.send(b"")
        except OSError as exc:
            raise OSError(exc.errno) from None
        self._connected = True

    # -- data ----------------------------------------------------------------------------
    def recv_into(self, buffer, bufsize=0):
        s = self._live()
        if bufsize > len(buffer):
            raise ValueError("bufsize must be <= len(buffer)")
        n = bufsize or len(buffer)
        if n == 0:
            return 0
        view = memoryview(buffer)[:n]
        deadline = self._deadline()
        while True:
            try:
                got = s.readinto(view)
            except OSError as exc:
                if exc.errno in (errno.ECONNRESET, errno.ENOTCONN):
                    self._connected = False
                if self._timeout_ms == 0 and exc.errno == errno.ENOTCONN:
                    raise OSError(errno.ENOTCONN) from None
                raise
            if got is not None:
                if got == 0 and self._timeout_ms == 0:
                    self._connected = False
                    raise OSError(errno.ENOTCONN)
                return got
            if self._timeout_ms == 0:
                raise OSError(errno.EAGAIN)
            if not _wait(s, select.POLLIN, deadline):
                raise OSError(errno.ETIMEDOUT)

    def recvfrom_into(self, buffer):
        s = self._live()
        deadline = self._deadline()
        while True:
            try:
                data, sockaddr = s.recvfrom(len(buffer))
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ETIMEDOUT):
                    raise BrokenPipeError() from None
            if self._timeout_ms == 0:
                raise OSError(errno.EAGAIN)
            if not _wait(s, select.POLLIN, deadline):
                raise OSError(errno.ETIMEDOUT)
        n = len(data)
        buffer[:n] = data
        return n, _addr(sockaddr)

    def send(self, data):
        s = self._live()
        try:
            sent = s.send(data)
        except OSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE):
                self._connected = False
            if exc.errno == errno.EPIPE:  # lwIP reports a closed peer as ECONNRESET/ENOTCONN
                raise OSError(errno.ENOTCONN) from None
            raise
        if sent is None:  # MicroPython: would block
            raise OSError(errno.EAGAIN)
        return sent

    def sendall(self, data):
        self._live()
        if not self._connected:
            raise BrokenPipeError()
        view = memoryview(data)
        while view:
            sent = self.send(view)
            view = view[sent:]

    def sendto(self, data, address):
        s = self._live()
        host, port = address
        sockaddr = self._pool._resolve(host, port)
        try:
            return s.sendto(data, sockaddr)
        except OSError:
            raise BrokenPipeError() from None

    @property
    def connected(self):
        return self._connected
