# SPDX-License-Identifier: MIT
"""The box inside the VM: its settings, its clock and the channel to the host (not a
CircuitPython module; the stand-ins share it).

The host (``board/run.py``) starts the VM with ``_boxboot.py CONFIG.json``. One TCP connection
to the host carries framed messages both ways: ``kind (1 byte) + length (2 bytes, big endian) +
payload``. Host to VM: ``U`` bytes on the meter line (already shaped by the host to the UART's
line setting), ``K`` a key event (key number, 1 pressed / 0 released). VM to host: ``L`` the
UART's line setting ("2400 even"), ``T`` bytes the UART sent, ``R`` reset requested (the host
ends the VM and starts it again), ``W`` watchdog settings/feeds, ``S`` a status line for the host.
Bytes arrive in the VM only when a stand-in asks (``pump``): the UART stand-in then keeps what
fits its receive buffer, which is what a board's background receiver would have kept.
"""

import socket
import time as _time  # the VM's built-in module (boot imports this before it installs its own)

CONFIG = {}
vm_time = _time  # stand-ins use this: after boot "time" is CircuitPython's
_mono_ns = _time.monotonic_ns
_sleep = _time.sleep

# -- clock ---------------------------------------------------------------------------------------
# Board time runs ``speed`` (an integer) times faster than the host's: a test can run a day of
# telegrams in minutes. Every clock of the box (time, supervisor.ticks_ms, keypad timestamps,
# watchdog) reads ns() so they agree.
_speed = 1
_start_real = _mono_ns()
_start_box = _start_real


def setup_clock(speed):
    global _speed, _start_real, _start_box
    _speed = int(speed) if speed and speed > 1 else 1
    _start_real = _mono_ns()
    _start_box = _start_real


def ns():
    """Board nanoseconds since power-on (plus CIRCUITPY_UNIX_MONOTONIC_OFFSET_MS if set)."""
    return _start_box + (_mono_ns() - _start_real) * _speed


def speed():
    return _speed


def sleep_board(seconds):
    """Sleep ``seconds`` of board time."""
    if seconds > 0:
        _sleep(seconds / _speed)


# -- channel to the host -------------------------------------------------------------------------
_sock = None
_handlers = {}  # kind -> (handler, streaming)


def connect(port):
    global _sock
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.setblocking(False)
    _sock = s


def on(kind, handler, stream=False):
    """Messages of ``kind`` (one byte, e.g. b"U"[0]) go to ``handler``.

    ``stream=True``: ``handler(buf, start, end)`` with each piece of the payload as it arrives
    (the UART: no copy, no buffer that grows); else ``handler(payload)`` with the whole payload
    (at most 64 bytes: keys).
    """
    _handlers[kind] = (handler, stream)


def send(kind, payload=b""):
    if _sock is None:
        return
    n = len(payload)
    data = bytes((kind, n >> 8, n & 0xFF)) + bytes(payload)
    view = memoryview(data)
    while view:
        try:
            sent = _sock.send(view)
        except OSError:  # host side buffer full: wait a little (the host always reads)
            _sleep(0.001)
            continue
        view = view[sent:]


# Reading: preallocated, so pumping allocates nothing on the VM's heap (which is the board's
# heap in this box) whatever the meter sends: a message header in _head, a short payload in
# _small, a streamed payload straight from _chunk to its handler.
_chunk = bytearray(4096)
_head = bytearray(3)
_small = bytearray(64)
_state = [0, 0, 0, 0]  # header bytes seen, payload bytes left, kind, short payload bytes held


def _message_start():
    st = _state
    kind = _head[0]
    st[1] = (_head[1] << 8) | _head[2]
    st[2] = kind
    st[3] = 0
    if st[1] == 0:
        _deliver_small(kind, 0)


def _deliver_small(kind, n):
    entry = _handlers.get(kind)
    if entry is not None and not entry[1]:
        entry[0](memoryview(_small)[:n])


def pump():
    """Read what the host sent and hand each message to its handler."""
    if _sock is None:
        return
    st = _state
    while True:
        n = _sock.readinto(_chunk)
        if not n:  # None: nothing now; 0: host gone
            return
        i = 0
        while i < n:
            if st[1] == 0 and st[0] < 3:  # in a header
                _head[st[0]] = _chunk[i]
                st[0] += 1
                i += 1
                if st[0] == 3:
                    st[0] = 0
                    _message_start()
                    if st[1] == 0:
                        continue
                    st[0] = 3  # in a payload
                continue
            take = min(st[1], n - i)
            kind = st[2]
            entry = _handlers.get(kind)
            if entry is not None and entry[1]:
                entry[0](_chunk, i, i + take)
            else:
                for k in range(take):
                    if st[3] < len(_small):
                        _small[st[3]] = _chunk[i + k]
                        st[3] += 1
            i += take
            st[1] -= take
            if st[1] == 0:
                st[0] = 0
                if entry is None or not entry[1]:
                    _deliver_small(kind, st[3])


def hold_forever():
    """What a board does after a reset request: nothing more (the host restarts the VM)."""
    while True:
        _sleep(1)
