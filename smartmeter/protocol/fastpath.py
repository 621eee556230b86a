# SPDX-License-Identifier: MIT
"""A learned fast path: decode a meter's next telegrams by the shape of its last one.

A meter sends the same structure every few seconds; only the values change. When the general
A-XDR walk decodes a second telegram of the same length (the first is decoded by the walk alone,
so it is shown sooner and a capture decoded once never pays for learning), :func:`learn` records
its shape: every byte that is not a
value (type tags, lengths, OBIS codes, scalers, units) goes into a mask and is compared, all at
once, as one big integer; every value the layout used gets a slot in one ``struct`` format.
The next telegram of that meter is decoded with one mask compare, one ``unpack_from`` and the
same scaling - no tree, no per-element Python walk. Anything that does not match the mask
(another format, a wrong key, an extra element) goes the general way, which raises the proper
error or learns the new shape. The result is identical by construction and checked by tests
for every layout.
"""

import struct

from .axdr import parse_datetime
from .layouts import TEXT, TIME, _text, scale

# leaf tag -> struct code for values the layouts read
_CODES = {
    0x05: "i",
    0x06: "I",
    0x0F: "b",
    0x10: "h",
    0x11: "B",
    0x12: "H",
    0x14: "q",
    0x15: "Q",
    0x16: "B",
}
_TEXT_TAGS = (0x09, 0x0A, 0x0C, 0x19)
# How a raw value becomes the stored one (precomputed from kind, scaler and unit)
_AS_IS = 0
_DIV = 1
_FLOAT = 2
_TEXT_OP = 3
_TIME_OP = 4
_SCALE = 5
_CONSTANT_1_BYTE = (0x0F, 0x16)  # scaler (int8) and unit (enum): part of the shape
_WIDTH = {code: struct.calcsize(">" + code) for code in _CODES.values()}
_ZEROS = bytes(64)

try:
    struct.calcsize(">2xB")
    _HAS_PAD = True
except (ValueError, TypeError):  # a port without "x" pad bytes: one unpack per value
    _HAS_PAD = False


class Template:
    """The learned shape of one meter's telegrams. Use :meth:`decode`."""

    __slots__ = ("length", "mask", "expected", "fmt", "slots", "items", "layout")

    def decode(self, apdu, reading):
        """Fill ``reading`` from ``apdu`` if it has this shape. Returns False if it does not."""
        if len(apdu) != self.length:
            return False
        if int.from_bytes(apdu, "big") & self.mask != self.expected:
            return False
        if _HAS_PAD:
            raw = struct.unpack_from(self.fmt, apdu, 0)
        else:
            raw = [struct.unpack_from(code, apdu, off)[0] for off, code in self.slots]
        values = reading.values
        i = 0
        for key, op, arg in self.items:
            v = raw[i]
            i += 1
            if op == _AS_IS:
                values[key] = v
            elif op == _DIV:
                values[key] = v / arg
            elif op == _TEXT_OP:
                values[key] = _text(v)
            elif op == _TIME_OP:
                reading.meter_time, reading.utc_offset, reading.dst = parse_datetime(v)
            elif op == _FLOAT:
                values[key] = float(v)
            else:  # _SCALE: the general rule (positive scalers, rounding of integer units)
                values[key] = scale(v, arg[0], arg[1], arg[2])
        reading.layout = self.layout
        return True


def learn(apdu, leaves, plan, layout, header_time):
    """Build a Template from a telegram the general path decoded, or None if it cannot.

    :param apdu: the plaintext data-notification
    :param leaves: ``(offset, tag, size)`` of every body leaf (``axdr.Parser.locate``)
    :param plan: ``(leaf, key, kind, scaler, unit)`` per value the layout stored
    :param layout: the layout name
    :param header_time: True if the meter time came from the header date-time (bytes 6..17)
    """
    n = len(apdu)
    mask = bytearray(b"\xff" * n)
    mask[1:5] = bytes(4)  # long-invoke-id-and-priority changes per telegram
    entries = []
    if header_time:
        mask[6:18] = bytes(12)
        entries.append((6, "12s", 12, None, TIME, 0, None))
    planned = set()
    for leaf, key, kind, scaler, unit in plan:
        if leaf is None:
            return None  # a value the fast path cannot reproduce
        if kind == TIME and header_time:
            continue  # the header's time wins, as in the general path
        off, tag, size = leaves[leaf]
        if kind in (TEXT, TIME):
            if tag not in _TEXT_TAGS:
                return None
            code = "%ds" % size
            width = size
        else:
            code = _CODES.get(tag)
            if code is None:
                return None
            width = _WIDTH[code]
        planned.add(leaf)
        entries.append((off, code, width, key, kind, scaler, unit))
    zeros = _ZEROS
    for index, (off, tag, size) in enumerate(leaves):
        if index in planned or not (
            (tag == 0x09 and size == 6) or (size == 1 and tag in _CONSTANT_1_BYTE)
        ):
            mask[off : off + size] = zeros[:size] if size <= 64 else bytes(size)
    entries.sort()  # by offset (offsets are unique)
    fmt = [">"]
    pos = 0
    for off, code, width, _key, _kind, _scaler, _unit in entries:
        if off < pos:
            return None
        if off > pos:
            fmt.append("%dx" % (off - pos))
        fmt.append(code)
        pos = off + width
    t = Template()
    t.length = n
    t.mask = int.from_bytes(bytes(mask), "big")
    t.expected = int.from_bytes(bytes(apdu), "big") & t.mask
    t.fmt = "".join(fmt)
    t.slots = [(e[0], ">" + e[1]) for e in entries]
    t.items = [_op(e[3], e[4], e[5], e[6]) for e in entries]
    t.layout = layout
    return t


_OPS = {}  # (kind, scaler, unit) -> (op, arg): a meter has a handful of kinds


def _op(key, kind, scaler, unit):
    """(key, op, arg): the cheapest operation that gives what ``layouts.scale`` gives."""
    k = (kind, scaler, unit)
    found = _OPS.get(k)
    if found is None:
        found = _op_for(kind, scaler, unit)
        if len(_OPS) < 64:  # bounded
            _OPS[k] = found
    return key, found[0], found[1]


def _op_for(kind, scaler, unit):
    if kind == TEXT:
        return _TEXT_OP, None
    if kind == TIME:
        return _TIME_OP, None
    probe = scale(7, scaler, unit, kind)
    if scaler == 0 and isinstance(probe, int):
        return _AS_IS, None
    if scaler == 0 and unit is None:
        return _AS_IS, None
    if scaler == 0:
        return _FLOAT, None
    if scaler < 0 and isinstance(probe, float):
        return _DIV, 10 ** (-scaler)
    return _SCALE, (scaler, unit, kind)
