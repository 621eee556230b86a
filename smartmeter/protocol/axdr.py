# SPDX-License-Identifier: MIT
"""A-XDR decoding of DLMS data (IEC 62056-6-2 encodings), bounds-checked, no recursion bombs.

Structures and arrays become lists; integers become int; octet-strings stay bytes (the
layouts decide whether they are OBIS codes, text or dates); visible-strings become str.
Every malformed input raises :class:`~smartmeter.protocol.errors.ParseError`, nothing else.
"""

import struct

from .errors import ParseError

unpack_from = struct.unpack_from

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_DEPTH = const(6)  # the deepest real body is structure > structure > structure (3)

# Fixed-size types: tag -> (size, struct format, or None: kept as raw bytes)
_NULL = const(0x00)
_ARRAY = const(0x01)
_STRUCT = const(0x02)
_BOOL = const(0x03)
_BITS = const(0x04)
_OCTETS = const(0x09)
_VISIBLE = const(0x0A)
_UTF8 = const(0x0C)
_DATETIME = const(0x19)

_FIXED = {
    0x05: (4, ">i"),
    0x06: (4, ">I"),
    0x0D: (1, ">B"),
    0x0F: (1, ">b"),
    0x10: (2, ">h"),
    0x11: (1, ">B"),
    0x12: (2, ">H"),
    0x14: (8, ">q"),
    0x15: (8, ">Q"),
    0x16: (1, ">B"),
    0x17: (4, ">f"),
    0x18: (8, ">d"),
    0x1A: (5, None),  # date: kept as raw bytes
    0x1B: (4, None),  # time: kept as raw bytes
}


class Parser:
    """A cursor over ``buf[pos:end]`` that reads A-XDR values.

    :param buf: bytes, bytearray or memoryview
    :param pos: start offset
    :param end: end offset (exclusive), default ``len(buf)``
    """

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf, pos=0, end=None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def need(self, n):
        """Raise ParseError unless ``n`` more bytes are available."""
        if n < 0 or self.pos + n > self.end:
            raise ParseError("telegram data truncated")

    def byte(self):
        """Read one byte."""
        if self.pos >= self.end:
            raise ParseError("telegram data truncated")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def length(self):
        """Read an A-XDR length: one byte below 0x80, else 0x81 xx / 0x82 hh ll."""
        n = self.byte()
        if n < 0x80:
            return n
        if n == 0x81:
            return self.byte()
        if n == 0x82:
            return (self.byte() << 8) | self.byte()
        raise ParseError("unsupported length form")

    def take(self, n):
        """Return the next ``n`` bytes as ``bytes`` and advance."""
        self.need(n)
        p = self.pos
        self.pos = p + n
        return bytes(self.buf[p : p + n])

    def uint(self, n):
        """Read an unsigned big-endian integer of ``n`` bytes."""
        self.need(n)
        buf = self.buf
        v = 0
        for i in range(self.pos, self.pos + n):
            v = (v << 8) | buf[i]
        self.pos += n
        return v

    def value(self):
        """Read one tagged A-XDR value and return it as a Python value."""
        return self.walk(None)[0]

    def locate(self, leaves):
        """Walk the value at the cursor, recording where its leaves are (see :meth:`walk`).

        :returns: the shape of the value: a leaf's index into ``leaves``, or a list of shapes
        """
        return self.walk(leaves)[1]

    def walk(self, leaves=None):
        """Read one tagged A-XDR value; optionally record where each leaf is.

        One walker for both uses (the general decode and learning a fast-path template): a loop
        with an explicit stack, bytes read inline, so a 336-byte body costs one pass.

        :param leaves: None, or a list that receives ``(offset, tag, size)`` per leaf in parse
            order
        :returns: ``(value, shape)``: structures/arrays are lists; shape mirrors the value with
            each leaf's index into ``leaves`` (None when ``leaves`` is None)
        """
        buf = self.buf
        p = self.pos
        end = self.end
        fixed = _FIXED
        track = leaves is not None
        root = []
        rshape = [] if track else None
        cur, left, cshape = root, 1, rshape
        stack = []
        depth = 0
        while True:
            if p >= end:
                raise ParseError("telegram data truncated")
            tag = buf[p]
            p += 1
            f = fixed.get(tag)
            if f is not None:
                size, fmt = f
                if p + size > end:
                    raise ParseError("telegram data truncated")
                cur.append(bytes(buf[p : p + size]) if fmt is None else unpack_from(fmt, buf, p)[0])
                if track:
                    cshape.append(len(leaves))
                    leaves.append((p, tag, size))
                p += size
                left -= 1
            elif tag == _STRUCT or tag == _ARRAY:  # noqa: PLR1714 - two consts: no tuple
                if depth >= _MAX_DEPTH:
                    raise ParseError("data nested too deeply")
                if p >= end:
                    raise ParseError("telegram data truncated")
                count = buf[p]
                p += 1
                if count >= 0x80:
                    count, p = _long_length(buf, p, end, count)
                # Every element takes at least one byte: refuse counts the data cannot hold.
                if count > end - p:
                    raise ParseError("element count exceeds telegram")
                v = []
                cur.append(v)
                shape = None
                if track:
                    shape = []
                    cshape.append(shape)
                left -= 1
                if count:
                    stack.append((cur, left, cshape))
                    cur, left, cshape = v, count, shape
                    depth += 1
                    continue
            else:
                if tag == _OCTETS or tag == _VISIBLE or tag == _UTF8 or tag == _BITS:  # noqa: PLR1714
                    if p >= end:
                        raise ParseError("telegram data truncated")
                    size = buf[p]
                    p += 1
                    if size >= 0x80:
                        size, p = _long_length(buf, p, end, size)
                    if tag == _BITS:
                        size = (size + 7) // 8
                elif tag == _DATETIME:
                    size = 12
                elif tag == _BOOL:
                    size = 1
                elif tag == _NULL:
                    size = 0
                else:
                    raise ParseError("unknown data type 0x%02X" % tag)
                if p + size > end:
                    raise ParseError("telegram data truncated")
                if tag == _NULL:
                    v = None
                elif tag == _BOOL:
                    v = buf[p] != 0
                else:
                    v = bytes(buf[p : p + size])
                    if tag == _VISIBLE or tag == _UTF8:  # noqa: PLR1714
                        try:
                            v = v.decode()
                        except UnicodeError:
                            raise ParseError("text is not valid UTF-8") from None
                cur.append(v)
                if track:
                    cshape.append(len(leaves))
                    leaves.append((p, tag, size))
                p += size
                left -= 1
            while not left:
                if not stack:
                    self.pos = p
                    return root[0], (rshape[0] if track else None)
                cur, left, cshape = stack.pop()
                depth -= 1


def _long_length(buf, p, end, first):
    """The 0x81 xx / 0x82 hh ll length forms; returns (length, new position)."""
    if first == 0x81:
        if p >= end:
            raise ParseError("telegram data truncated")
        return buf[p], p + 1
    if first == 0x82:
        if p + 2 > end:
            raise ParseError("telegram data truncated")
        return (buf[p] << 8) | buf[p + 1], p + 2
    raise ParseError("unsupported length form")


def parse_datetime(raw):
    """Decode a 12-byte COSEM date-time.

    :returns: ``(fields, utc_offset, dst)`` where fields is (year, month, day, hour, minute,
        second); utc_offset is minutes east of UTC or None when the meter leaves the deviation
        unspecified (0x8000); dst is True/False from the clock-status byte, or None if unknown.
        Unspecified (0xFF) hundredths, second and weekday are taken as 0 / ignored.
    :raises ParseError: if the length is wrong or a required field is out of range.
    """
    if raw is None or len(raw) != 12:
        raise ParseError("date-time must be 12 bytes")
    year = (raw[0] << 8) | raw[1]
    month, day, hour, minute, second = raw[2], raw[3], raw[5], raw[6], raw[7]
    if second == 0xFF:
        second = 0
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 59):
        raise ParseError("invalid date-time")
    if year == 0xFFFF or year < 2000 or year > 2099:
        raise ParseError("invalid date-time year")
    dev = struct.unpack(">h", bytes(raw[9:11]))[0]
    offset = None
    if dev != -0x8000:
        if not -840 <= dev <= 840:
            raise ParseError("invalid UTC deviation")
        offset = -dev  # DLMS deviation is local -> UTC in minutes: -60 means UTC+01:00
    status = raw[11]
    dst = None if status == 0xFF else bool(status & 0x80)
    return (year, month, day, hour, minute, second), offset, dst
