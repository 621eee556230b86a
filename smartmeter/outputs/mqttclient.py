# SPDX-License-Identifier: MIT
"""A small MQTT 3.1.1 client for publishing only, whose every wait has a deadline of its own.

Why not ``adafruit_minimqtt``: its ``connect()`` and ``loop()`` check their timeout only while
*no* byte arrives, so a broker that keeps sending anything but CONNACK (a byte every 50 ms, a
PINGRESP stream) or announces a 256 MiB packet holds the caller for as long as it likes - the
whole firmware loop, the watchdog and the meter UART with it.

Here nothing waits inside a call except the TCP connect (``connect_timeout``). After that the
socket is non-blocking and :meth:`MqttClient.service` does a bounded amount of work per call (at
most ``_READ_BUDGET`` bytes read, ``_SEND_BUDGET`` bytes sent):

- TLS: the handshake runs across calls where the TLS layer can pause (CPython:
  ``do_handshake_on_connect=False``, then ``do_handshake()``); CircuitPython's ``SSLSocket.connect``
  runs it in one call, which stops waiting for the broker after ``_TLS_WAIT_MS``
  (``netutil.Bounded``): a broker that withholds or trickles its handshake holds no pass longer
  (the handshake's own computing, about 1 s on an ESP32-S3, is not cut short);

- CONNACK must arrive within ``_CONNACK_MS`` of CONNECT (TLS: of the TCP connect, the handshake
  included), counted by our clock across calls;
- a PINGREQ is sent every ``keep_alive / 2`` and its PINGRESP must arrive within ``_PINGRESP_MS``
  (a broker that vanished without a reset is noticed within ``keep_alive / 2 + 10 s``);
- queued output that the broker does not take for ``_STALL_MS`` ends the connection;
- the broker may only send what we asked for: CONNACK once, PINGRESP after our PINGREQ. Any
  other packet, a packet announcing more than ``_IN_MAX`` bytes, a malformed length or a closed
  socket raises :class:`MqttError` at once (the caller closes and backs off).

Publishing is QoS 0 only (the sink sends state snapshots; a lost one is replaced 5 s later).
"""

from ..netutil import start_tls, would_block
from ..timeutil import ticks_add

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


CONNECTING = const(1)
UP = const(2)
CLOSED = const(3)
HANDSHAKE = const(4)  # TLS handshake under way; CONNECT queued, not yet sent

_CONNACK_MS = const(3000)  # CONNECT -> CONNACK, whatever the broker sends meanwhile
_CONNACK_TLS_MS = const(6000)
_TLS_WAIT_MS = const(1000)  # CircuitPython: the one-call handshake's waits for the broker
_PINGRESP_MS = const(10000)
_STALL_MS = const(5000)  # queued output without progress this long: the broker is gone
_IN_MAX = const(8)  # the longest packet we accept (CONNACK: 2 bytes after the header)
_OUT_MAX = const(4096)  # queued output (a discovery config is ~700 bytes)
_READ_BUDGET = const(256)  # bytes read per service() call
_SEND_BUDGET = const(4096)  # bytes sent per service() call


class MqttError(Exception):
    """A protocol error, a refused login (``code`` = CONNACK return code) or a missed deadline."""

    def __init__(self, text, code=None):
        super().__init__(text)
        self.code = code


def _utf8(text):
    data = text.encode() if isinstance(text, str) else bytes(text)
    if len(data) > 65535:
        raise ValueError("MQTT string too long")
    return bytes((len(data) >> 8, len(data) & 255)) + data


def _packet(first, body):
    n = len(body)
    head = bytearray((first,))
    while True:
        byte = n & 127
        n >>= 7
        head.append(byte | 128 if n else byte)
        if not n:
            break
    return bytes(head) + body


def connect_packet(client_id, keep_alive, will=None, user=None, password=None):
    """The CONNECT packet (MQTT 3.1.1, clean session); ``will`` = (topic, payload, retain)."""
    flags = 0x02
    payload = _utf8(client_id)
    if will is not None:
        flags |= 0x04 | (0x20 if will[2] else 0)
        payload += _utf8(will[0]) + _utf8(will[1])
    if user:
        flags |= 0x80
        payload += _utf8(user)
        if password:
            flags |= 0x40
            payload += _utf8(password)
    head = b"\x00\x04MQTT\x04" + bytes((flags, keep_alive >> 8, keep_alive & 255))
    return _packet(0x10, head + payload)


def publish_packet(topic, payload, retain=False):
    """A QoS 0 PUBLISH packet."""
    data = payload.encode() if isinstance(payload, str) else bytes(payload)
    return _packet(0x31 if retain else 0x30, _utf8(topic) + data)


class MqttClient:
    """One connection to a broker. Create, :meth:`start`, then :meth:`service` every pass.

    :param pool: socket pool (``socketpool.SocketPool`` or CPython's ``socket`` module)
    :param ticks_ms: wrapping ms clock; ``ticks_diff``: its difference function
    :param ssl_context: wraps the socket for TLS (``server_hostname`` = host), or None
    """

    def __init__(
        self,
        pool,
        host,
        port,
        client_id,
        keep_alive,
        ticks_ms,
        ticks_diff,
        ssl_context=None,
        connect_timeout=0.5,
    ):
        self.pool = pool
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keep_alive = keep_alive
        self._ticks = ticks_ms
        self._diff = ticks_diff
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.state = CLOSED
        self.sock = None
        self.bytes_in = 0
        self._out = bytearray()
        self._inbuf = bytearray(_IN_MAX)
        self._one = bytearray(1)
        self._deadline = 0
        self._last_tx = 0
        self._last_progress = 0
        self._ping_due = None  # deadline of an outstanding PINGREQ
        self._next_ping = 0
        self._reset_parser()

    def _reset_parser(self):
        self._type = None  # first byte of the packet being read
        self._len = 0
        self._shift = 0
        self._len_done = False
        self._have = 0

    # -- connection ---------------------------------------------------------------------------
    def start(self, will=None, user=None, password=None, addr=None):
        """TCP connect and queue CONNECT (TLS: start the handshake). The only blocking step:
        the TCP connect, at most ``connect_timeout``.

        :param addr: a cached ``getaddrinfo`` entry (skips the DNS lookup)
        :returns: the ``getaddrinfo`` entry used (for the caller to cache)
        """
        pool = self.pool
        if addr is None:
            addr = pool.getaddrinfo(self.host, self.port, 0, getattr(pool, "SOCK_STREAM", 1))[0]
        sock = pool.socket(addr[0], getattr(pool, "SOCK_STREAM", 1))
        self.sock = sock
        try:
            sock.settimeout(self.connect_timeout)
            sock.connect(addr[4])
            sock.settimeout(0)
            now = self._ticks()
            tls = self.ssl_context is not None
            self.state = HANDSHAKE if tls else CONNECTING
            self._deadline = ticks_add(now, _CONNACK_TLS_MS if tls else _CONNACK_MS)
            self._last_tx = self._last_progress = now
            self._next_ping = ticks_add(now, self.keep_alive * 500)
            self._queue(connect_packet(self.client_id, self.keep_alive, will, user, password))
            if tls:
                self._wrap(addr[4])
            else:
                self._flush(now)
        except BaseException:
            self.close()
            raise
        return addr

    def _wrap(self, sockaddr):
        """Wrap the connected socket for TLS; on CircuitPython this runs the whole handshake."""
        # CPython: a handshake that can pause (service() goes on with it)
        if start_tls(self, self.ssl_context, self.host, sockaddr, self._ticks, _TLS_WAIT_MS):
            self._handshake_done(self._ticks())

    def _handshake_done(self, now):
        self.state = CONNECTING
        self._last_progress = now  # the stall check counts from here, not from the queueing
        self._flush(now)

    def close(self):
        """Drop the socket without DISCONNECT (the broker then publishes the last will)."""
        sock = self.sock
        self.sock = None
        self.state = CLOSED
        self._out = bytearray()
        if sock is not None:
            try:
                sock.close()
            except Exception:  # noqa: BLE001, S110 - the socket is gone either way
                pass

    # -- per pass -----------------------------------------------------------------------------
    def service(self, now=None):
        """Read what arrived, send what is queued, check every deadline. Bounded work.

        :raises MqttError: protocol error, refused login, deadline missed, connection closed
        :raises OSError: from the socket
        """
        if self.sock is None:
            raise MqttError("not connected")
        now = self._ticks() if now is None else now
        if self.state == HANDSHAKE:
            try:
                self.sock.do_handshake()
            except OSError as exc:
                if not would_block(exc):
                    raise
                if self._diff(now, self._deadline) >= 0:
                    raise MqttError("no TLS handshake in time") from None
                return
            self._handshake_done(now)
        self._read(now)
        if self.state == CONNECTING and self._diff(now, self._deadline) >= 0:
            raise MqttError("no CONNACK in time")
        if self.state == UP:
            if self._ping_due is not None:
                if self._diff(now, self._ping_due) >= 0:
                    raise MqttError("no PINGRESP in time")
            elif self._diff(now, self._next_ping) >= 0:
                self._queue(b"\xc0\x00")  # PINGREQ: proves the broker still answers
                self._ping_due = ticks_add(now, _PINGRESP_MS)
                self._next_ping = ticks_add(now, self.keep_alive * 500)
        self._flush(now)

    def room(self):
        """Bytes that may still be queued."""
        return _OUT_MAX - len(self._out)

    def publish(self, topic, payload, retain=False, now=None):
        """Queue a QoS 0 PUBLISH; False (nothing queued) when not up or the queue is full."""
        if self.state != UP:
            return False
        data = publish_packet(topic, payload, retain)
        if len(data) > self.room():
            return False
        self._queue(data)
        self._flush(self._ticks() if now is None else now)
        return True

    # -- internals ----------------------------------------------------------------------------
    def _queue(self, data):
        if not self._out:
            self._last_progress = self._ticks()
        self._out += data

    def _flush(self, now):
        out = self._out
        if not out:
            return
        budget = _SEND_BUDGET
        while out and budget > 0:
            try:
                n = self.sock.send(memoryview(out)[: min(len(out), budget)])
            except OSError as exc:
                if not would_block(exc):
                    raise
                n = 0
            if not n:
                break
            out = self._out = out[n:]  # no del on a bytearray slice in Micro/CircuitPython
            budget -= n
            self._last_tx = self._last_progress = now
        if out and self._diff(now, self._last_progress) >= _STALL_MS:
            raise MqttError("broker does not take our data")

    def _read(self, now):
        budget = _READ_BUDGET
        one = self._one
        while budget > 0:
            try:
                n = self.sock.recv_into(one, 1)
            except OSError as exc:
                if would_block(exc):
                    return
                raise
            if not n:
                raise MqttError("connection closed by the broker")
            budget -= 1
            self.bytes_in += 1
            self._byte(one[0], now)

    def _byte(self, b, now):
        if self._type is None:
            kind = b >> 4
            if kind == 2 and self.state == CONNECTING and b == 0x20:
                pass
            elif kind == 13 and b == 0xD0 and self._ping_due is not None:
                pass
            else:
                raise MqttError("unexpected packet 0x%02x from the broker" % b)
            self._type = b
            return
        if not self._len_done:
            self._len |= (b & 127) << self._shift
            self._shift += 7
            if b & 128:
                if self._shift >= 28:
                    raise MqttError("malformed packet length")
                return
            self._len_done = True
            if self._len > _IN_MAX:
                raise MqttError("packet of %d bytes announced" % self._len)
            if self._len == 0:
                self._packet(now)
            return
        self._inbuf[self._have] = b
        self._have += 1
        if self._have >= self._len:
            self._packet(now)

    def _packet(self, now):
        kind = self._type
        n = self._len
        body = self._inbuf
        self._reset_parser()
        if kind == 0x20:
            if n != 2:
                raise MqttError("malformed CONNACK")
            code = body[1]
            if code:
                raise MqttError("connection refused (code %d)" % code, code)
            self.state = UP
            return
        if n != 0:
            raise MqttError("malformed PINGRESP")
        self._ping_due = None
