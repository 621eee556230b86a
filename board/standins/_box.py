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
_rx = bytearray()
_handlers = {}


def connect(port):
    global _sock
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.setblocking(False)
    _sock = s


def on(kind, handler):
    """Call ``handler(payload)`` for each message of ``kind`` (one byte, e.g. b"U"[0])."""
    _handlers[kind] = handler


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


_chunk = bytearray(4096)


def pump():
    """Read what the host sent and hand each message to its handler."""
    global _rx
    if _sock is None:
        return
    while True:
        n = _sock.readinto(_chunk)
        if not n:  # None: nothing now; 0: host gone
            break
        _rx.extend(memoryview(_chunk)[:n])
    pos = 0
    end = len(_rx)
    while end - pos >= 3:
        n = (_rx[pos + 1] << 8) | _rx[pos + 2]
        if end - pos < 3 + n:
            break
        handler = _handlers.get(_rx[pos])
        if handler is not None:
            handler(memoryview(_rx)[pos + 3 : pos + 3 + n])
        pos += 3 + n
    if pos:
        _rx = _rx[pos:]  # MicroPython's bytearray has no slice deletion


def hold_forever():
    """What a board does after a reset request: nothing more (the host restarts the VM)."""
    while True:
        _sleep(1)
