# SPDX-License-Identifier: MIT
"""The usage summary file as one bytes object: older versions, tests and tools. Pure.

The board writes the summary piece by piece (``Usage.to_pieces``) and reads a file of this
version (``SMU3``) straight into the summary's arrays (``Usage.load``). What is here it needs at
most once, after an update: reading a file of an earlier version whole - ``SMU1`` (before
quarters: hours, days, months; the quarters start empty) or ``SMU2`` (before grid fees and peaks:
6 fields a row; grid parts 0, the peaks start empty) - with :func:`load_whole`.
``usagelog.UsageSink`` imports this module only then, and on the board it leaves
``sys.modules`` again once it has read the file.
Tests and tools use :func:`to_bytes`, :func:`from_bytes`, :func:`peek`, :func:`checksum` and
:func:`size_bytes`. Runs under the MicroPython VM.
"""

import sys
from array import array

from .peaks import WORDS as PEAK_WORDS
from .peaks import Peaks
from .usage import _MAGIC, _MAGIC_V1, _MAGIC_V2, DAYS, HOURS, MONTHS, QUARTERS, _u32

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# the same as usage.py's (its private consts are not importable on the board): the file's
# header, the fields a row, the ring sizes in the header
_HEAD = const(32)
_FIELDS = const(7)
_OLD_FIELDS = const(6)  # fields a row of SMU1 and SMU2
_SIZES = (QUARTERS // 4) << 24 | HOURS << 16 | DAYS << 8 | MONTHS
_SIZES_V1 = HOURS << 16 | DAYS << 8 | MONTHS


# not on a PC, where tests reach this module's functions by module
_UNLOAD = sys.implementation.name in ("circuitpython", "micropython")


def load_whole(usage, f):
    """Load the summary file open as ``f`` (at its start) whole into ``usage``
    (:func:`from_bytes`); on the board this module then leaves ``sys.modules`` (its heap comes
    back at the next collection). :raises ValueError: when it is damaged; :raises OSError:"""
    try:
        from_bytes(usage, bytes(f.read(size_bytes() + 1)))
    finally:
        if _UNLOAD:
            sys.modules.pop(__name__, None)
            package, _, name = __name__.rpartition(".")
            try:
                delattr(sys.modules[package], name)
            except (AttributeError, KeyError):  # not set (CircuitPython raises KeyError)
                pass


def to_bytes(usage):
    """The summary file of ``usage`` (a ``usage.Usage``) as one bytes object (what the board
    writes piece by piece with ``Usage.to_pieces``; it counts ``usage.seq`` up as a save
    does)."""
    return b"".join(bytes(p) for p in usage.to_pieces())


def from_bytes(usage, data):
    """Load a whole summary file into ``usage``: one of this version (what :func:`to_bytes`
    made) or an older one (before quarters, quarters start empty; before grid fees and peaks,
    grid parts are 0 and the peaks start empty).
    :raises ValueError: when it is not that (damaged); nothing is changed then."""
    peek(data)
    rings = usage._rings()
    fields = _OLD_FIELDS
    if data[:4] == _MAGIC_V1:
        rings = rings[:3]
    elif data[:4] == _MAGIC:
        fields = _FIELDS
    body = memoryview(data)[_HEAD:]
    pos = 0
    for ring in rings:
        count = _u32(body, pos)
        headi = _u32(body, pos + 4)
        if count > ring.size or (count and not 0 <= headi < ring.size):
            raise ValueError("bad ring")
        pos += 8 + ring.size * fields * 4
    peaks = None
    if fields == _FIELDS:
        peaks = [_u32(body, pos + 4 * k) for k in range(PEAK_WORDS)]
        Peaks().from_words(peaks)  # raises ValueError when they make no sense
    pos = 0
    usage.quarters.clear()
    for ring in rings:
        count = _u32(body, pos)
        ring.count = count
        ring.head = _u32(body, pos + 4) if count else -1
        n = ring.size * fields * 4
        if fields == _FIELDS:
            # bytes, not a memoryview: MicroPython's array() copies bytes raw (little-endian,
            # as written) but takes a memoryview element by element
            ring.data = array("i", bytes(body[pos + 8 : pos + 8 + n]))
        else:  # an older file's rows have fewer fields
            d = ring.data
            p = pos + 8
            for row in range(ring.size):
                base = row * _FIELDS
                for f in range(_FIELDS):
                    if f < fields:
                        d[base + f] = _u32(body, p)
                        p += 4
                    else:
                        d[base + f] = 0
        pos += 8 + n
    if peaks is None:
        usage.peaks.clear()
    else:
        usage.peaks.from_words(peaks)
    usage._take_head(data)


def size_bytes(version=3):
    """Bytes of the summary file (``version`` 1: the one before quarters, 2: before grid fees
    and peaks)."""
    rows = HOURS + DAYS + MONTHS
    if version == 1:
        return _HEAD + 8 * 3 + rows * _OLD_FIELDS * 4
    if version == 2:
        return _HEAD + 8 * 4 + (rows + QUARTERS) * _OLD_FIELDS * 4
    return _HEAD + 8 * 4 + (rows + QUARTERS) * _FIELDS * 4 + PEAK_WORDS * 4


def peek(data):
    """The save counter of a summary file, after checking it whole (magic, ring sizes,
    checksum). :raises ValueError: when it is not a good summary."""
    if data[:4] == _MAGIC and len(data) == size_bytes():
        sizes = _SIZES
    elif data[:4] == _MAGIC_V2 and len(data) == size_bytes(2):
        sizes = _SIZES
    elif data[:4] == _MAGIC_V1 and len(data) == size_bytes(1):
        sizes = _SIZES_V1
    else:
        raise ValueError("not a usage summary")
    if _u32(data, 4) != sizes:
        raise ValueError("other ring sizes")
    if checksum(memoryview(data)[_HEAD:]) != _u32(data, 28) & 0xFFFFFFFF:
        raise ValueError("checksum")
    return _u32(data, 8)


def checksum(data):
    """Fletcher-32 over ``data`` (bytes-like, even or odd length): what ``usage._Fletcher``
    gives over the same int32 values."""
    a = b = 0
    n = len(data)
    i = 0
    while i < n:
        end = i + 720 if i + 720 < n else n  # 360 words keep a, b below 2**32
        while i < end:
            w = data[i] | ((data[i + 1] << 8) if i + 1 < n else 0)
            a += w
            b += a
            i += 2
        a %= 65535
        b %= 65535
    return (b << 16) | a
