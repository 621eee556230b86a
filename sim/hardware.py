# SPDX-License-Identifier: MIT
"""PC stand-ins for the board's hardware, with the device's semantics.

The UART has a bounded receive buffer that drops bytes when full (and counts it), like
``busio.UART``'s ``receiver_buffer_size``; the clock's ticks wrap at 2**29 like
``supervisor.ticks_ms()``; keys are a keypad-style event queue.
"""

import os
import sys
import threading
import time
from collections import deque

from smartmeter.hardware import Hardware  # noqa: F401 - the PC builds the same object

_TICKS_MASK = (1 << 29) - 1


class SimUart:
    """``busio.UART``: ``readinto``, ``in_waiting``, ``write``, bounded receive buffer, and the
    line setting (baud rate, parity) that ``set_line`` changes like the board does.

    Bytes the meter sends with another line setting than the receiver's arrive the way a real
    UART samples them (see :func:`resample`): garbage, fewer or more bytes, parity and framing
    errors dropped and counted - so a line-setting search has something real to find.

    Thread-safe: the real-time meter (:class:`MeterThread`) pushes from its own thread while
    the loop reads, like the board's UART fills its buffer in the background.
    """

    def __init__(self, buffer_size=8192, baudrate=2400, parity="even"):
        self.buffer_size = buffer_size
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.overflows = 0  # bytes dropped because the buffer was full
        self.max_read = None  # limit bytes per readinto (tests: odd chunk sizes)
        self.baudrate = baudrate
        self.parity = parity
        self.line_errors = 0  # bytes dropped for a parity or framing error
        self.line_changes = 0
        self.tx = bytearray()  # what the firmware wrote (the meter reads it)
        self.writes = 0

    def set_line(self, baudrate, parity):
        """The device's ``set_line``: new settings, the receive buffer is emptied (a rebuild)."""
        with self._lock:
            if (baudrate, parity) != (self.baudrate, self.parity):
                self.line_changes += 1
                self._buf = bytearray()
            self.baudrate = baudrate
            self.parity = parity
        return self

    def push(self, data, line=None):
        """The meter sends ``data`` (with its ``line`` = (baudrate, parity), default: ours);
        bytes past the buffer's capacity are lost."""
        with self._lock:
            if line is not None and tuple(line) != (self.baudrate, self.parity):
                data, errors = resample(data, line, (self.baudrate, self.parity))
                self.line_errors += errors
            room = self.buffer_size - len(self._buf)
            if len(data) > room:
                self.overflows += len(data) - max(room, 0)
                data = data[: max(room, 0)]
            self._buf += data

    @property
    def in_waiting(self):
        return len(self._buf)

    def readinto(self, buf):
        with self._lock:
            n = min(len(buf), len(self._buf))
            if self.max_read:
                n = min(n, self.max_read)
            if not n:
                return None  # like busio.UART with timeout=0 and nothing received
            buf[:n] = self._buf[:n]
            del self._buf[:n]
            return n

    def write(self, data):
        with self._lock:
            self.tx += data
            self.writes += 1
        return len(data)

    def take_tx(self):
        """What the firmware sent since the last call (the meter's receiver)."""
        with self._lock:
            out = bytes(self.tx)
            self.tx = bytearray()
        return out


class LineMemory:
    """The device's nvm line memory as a file (``<data dir>/nvm-line``)."""

    def __init__(self, path):
        self.path = path

    def load(self):
        try:
            with open(self.path, encoding="ascii") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def save(self, index):
        with open(self.path, "w", encoding="ascii") as f:
            f.write("%d\n" % index)


def _bits(data, parity):
    """Line levels of ``data`` sent back to back: start 0, 8 data bits LSB first, parity, stop 1."""
    out = [1, 1]  # idle before the first start bit
    for b in data:
        out.append(0)
        ones = 0
        for k in range(8):
            bit = (b >> k) & 1
            ones += bit
            out.append(bit)
        if parity == "even":
            out.append(ones & 1)
        elif parity == "odd":
            out.append(1 - (ones & 1))
        out.append(1)
    out += [1, 1]
    return out


def resample(data, send_line, recv_line):
    """What a UART set to ``recv_line`` receives from a sender on ``send_line``.

    The sender's bit stream is sampled at the receiver's bit times (mid-bit, from each falling
    edge, like a UART). A byte whose parity or stop bit is wrong is dropped and counted (as with
    parity checking on: ``INPCK``). Returns ``(bytes received, errors)``.
    """
    s_baud, s_par = send_line
    r_baud, r_par = recv_line
    bits = _bits(data, s_par)
    n = len(bits)
    ratio = s_baud / r_baud  # sender bits per receiver bit
    frame = 10 if r_par == "none" else 11
    out = bytearray()
    errors = 0
    t = 0.0  # position in sender bits
    while True:
        i = int(t)
        while i < n and bits[i]:  # hunt the start bit's falling edge
            i += 1
        if i >= n:
            break
        start = t if i == int(t) else float(i)  # still low where the last frame ended

        def level(k, start=start):
            j = int(start + (k + 0.5) * ratio)
            return bits[j] if j < n else 1

        if level(0):  # glitch: not a start bit at mid-bit
            t = start + 1
            continue
        value = 0
        ones = 0
        for k in range(8):
            bit = level(1 + k)
            ones += bit
            value |= bit << k
        ok = True
        if r_par != "none":
            want = ones & 1 if r_par == "even" else 1 - (ones & 1)
            ok = level(9) == want
        if not level(frame - 1):
            ok = False
        if ok:
            out.append(value)
        else:
            errors += 1
        t = start + (frame - 0.5) * ratio  # look for the next edge after the stop bit's middle
    return bytes(out), errors


class SmallBufferPool:
    """The ``socket`` module as a socket pool whose TCP sockets have an ESP32-sized send buffer.

    lwIP on the ESP32-S3 buffers about 5.7 KiB per TCP socket (``TCP_SND_BUF``); Linux buffers
    megabytes on loopback, so a peer that stops reading would take minutes to block a send. With
    this pool it blocks as soon as it would on the board.
    """

    SNDBUF = 5744

    def __init__(self):
        import socket

        self._socket = socket
        self.AF_INET = socket.AF_INET
        self.SOCK_STREAM = socket.SOCK_STREAM
        self.SOCK_DGRAM = socket.SOCK_DGRAM
        self.SOL_SOCKET = socket.SOL_SOCKET
        self.SO_REUSEADDR = socket.SO_REUSEADDR
        self.timeout = socket.timeout
        self.gaierror = socket.gaierror

    def getaddrinfo(self, *args, **kw):
        return self._socket.getaddrinfo(*args, **kw)

    def socket(self, family=None, kind=None, proto=0):
        s = self._socket
        sock = s.socket(s.AF_INET if family is None else family, kind or s.SOCK_STREAM, proto)
        if (kind or s.SOCK_STREAM) == s.SOCK_STREAM:
            sock.setsockopt(s.SOL_SOCKET, s.SO_SNDBUF, self.SNDBUF // 2)  # Linux doubles it
        return sock


class SimWatchdog:
    """``microcontroller.watchdog`` stand-in: records the longest gap between feeds.

    ``max_gap_s`` is wall-clock seconds (what a board's watchdog measures); ``timeout_s`` (if
    set) counts the gaps that would have reset a board in ``bites``.
    """

    def __init__(self, timeout_s=None):
        self.timeout_s = timeout_s
        self.feeds = 0
        self.max_gap_s = 0.0
        self.bites = 0
        self._last = None

    def feed(self):
        now = time.monotonic()
        if self._last is not None:
            gap = now - self._last
            if gap > self.max_gap_s:
                self.max_gap_s = gap
            if self.timeout_s and gap > self.timeout_s:
                self.bites += 1
        self._last = now
        self.feeds += 1

    def reset_stats(self):
        self.max_gap_s = 0.0
        self._last = None


class MeterThread:
    """The virtual meter sending on its own, in real time, whatever the loop is doing.

    ``send()`` is called whenever ``due()`` says so; both come from :class:`sim.run.Simulation`.
    A stalled loop then shows up as it would on the board: the UART buffer fills and bytes (and
    so telegrams) are lost, counted in ``SimUart.overflows``.
    """

    def __init__(self, due, send, step_s=0.005):
        self._due = due
        self._send = send
        self._step_s = step_s
        self._stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, name="sim-meter", daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                if self._due():
                    self._send()
                self._stop.wait(self._step_s)
        except BaseException as exc:  # noqa: BLE001 - reported by the simulation
            self.error = exc

    def stop(self):
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(2)


class SimClock:
    """Monotonic ticks (ms, wrapping at 2**29) and UTC time, running ``speed`` times faster."""

    def __init__(self, speed=1.0, start_epoch=None, ticks_offset=0):
        self.speed = speed
        self._t0 = time.monotonic()
        self.start_epoch = int(time.time()) if start_epoch is None else start_epoch
        self._ticks_offset = ticks_offset

    def elapsed_ms(self):
        return int((time.monotonic() - self._t0) * 1000 * self.speed)

    def ticks_ms(self):
        return (self.elapsed_ms() + self._ticks_offset) & _TICKS_MASK

    def wall_ms(self):
        """Real milliseconds whatever ``speed`` is: what a client or a socket sees (the web
        server's budgets use it)."""
        return int(time.monotonic() * 1000) & _TICKS_MASK

    def time(self):
        return self.start_epoch + self.elapsed_ms() // 1000

    def sync_ntp(self, server):
        return True  # the PC's clock is set


class ManualClock:
    """A clock tests advance by hand (``advance(ms)``); ``time()`` is None until set."""

    def __init__(self, start_epoch=None, ticks=0):
        self._ticks = ticks
        self.epoch = start_epoch
        self._frac = 0

    def advance(self, ms):
        self._ticks += ms
        if self.epoch is not None:
            self._frac += ms
            self.epoch += self._frac // 1000
            self._frac %= 1000

    def ticks_ms(self):
        return self._ticks & _TICKS_MASK

    def time(self):
        return self.epoch


class SimRadio:
    """WiFi view: connected, ip, rssi; ``reconnect()``."""

    def __init__(self, connected=True):
        self.connected = connected
        self.ip = "127.0.0.1" if connected else None
        self.rssi = -61 if connected else None
        self.reconnects = 0
        self.ap = None
        self.mdns = None

    def reconnect(self):
        self.reconnects += 1

    def start_ap(self, ssid, password):
        self.ap = (ssid, password)

    def stop_ap(self):
        self.ap = None

    def start_mdns(self, hostname):
        self.mdns = hostname


class Event:
    __slots__ = ("key_number", "pressed", "released")

    def __init__(self, key_number, pressed):
        self.key_number = key_number
        self.pressed = pressed
        self.released = not pressed


class EventQueue:
    """``keypad.EventQueue``: ``get()`` returns an Event or None."""

    def __init__(self, max_events=64):
        self._q = deque(maxlen=max_events)

    def get(self):
        return self._q.popleft() if self._q else None

    def put(self, key_number, pressed=True):
        self._q.append(Event(key_number, pressed))

    def __len__(self):
        return len(self._q)


class SimKeys:
    """``keypad.Keys`` stand-in: key 0 = NEXT, 1 = ENTER."""

    def __init__(self):
        self.events = EventQueue()

    def press(self, key_number):
        self.events.put(key_number, True)
        self.events.put(key_number, False)


class Console:
    """The serial console: lines out, single characters in (non-blocking).

    Keys typed into a terminal: ``d`` status dump, ``r`` restart, ``n`` NEXT, ``e`` ENTER.
    """

    def __init__(self, out=sys.stdout, keys=None, interactive=None):
        self.out = out  # None: silent (lines are still kept in ``lines``)
        self.keys = keys
        self.lines = deque(maxlen=1000)
        self._pending = deque()
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        if self.interactive:
            os.set_blocking(sys.stdin.fileno(), False)

    def type(self, text):
        self._pending.extend(text)

    def write(self, line):
        self.lines.append(line)
        if self.out is not None:
            print(line, file=self.out, flush=True)

    def read_char(self):
        if not self._pending and self.interactive:
            try:
                data = os.read(sys.stdin.fileno(), 64)
            except (BlockingIOError, OSError):
                data = b""
            self._pending.extend(data.decode(errors="ignore"))
        while self._pending:
            ch = self._pending.popleft()
            if ch in "ne" and self.keys is not None:
                self.keys.press(0 if ch == "n" else 1)
                continue
            if ch.strip():
                return ch
        return None
