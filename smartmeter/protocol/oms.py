# SPDX-License-Identifier: MIT
"""Netz OÖ AMIS (Siemens TD-3511/3512): wired M-Bus SND_UD with OMS mode-5 encryption.

The payload (C through the last data byte of one long frame, as the transport reader delivers
it for CI ``5B``/``72``) is::

    C | A | CI | ID (4) | MAN (2) | VER | MED | ACC | STATUS | CFG (2, little-endian) | data

CFG bits 8-12 are the security mode (5 = AES-128-CBC, IV = MAN ‖ ID ‖ VER ‖ MED ‖ ACC × 8), bits
4-7 the number of encrypted 16-byte blocks (0: all of the data). Mode 0 with data that is not
plaintext records is decrypted as mode 5 too: AMIS always encrypts, and a published demo
telegram has its CFG bytes swapped. The plaintext starts (and ends) with ``2F 2F`` fill bytes:
anything else after decryption is a wrong key, reported as such - never as values.

Records are little-endian DIF [DIFE...] VIF [VIFE...] value. Which register each record is comes
from its DIF/DIFE/VIF/VIFE bytes (the data-length nibble of the DIF aside), as Netz OÖ documents
them; records not in the table are skipped. Values are in Wh, varh, W, var as sent (integers).

The meter time (``06 6D``, CP48) is local time without an offset: the offset is derived from the
Austrian summer-time rules (last Sunday of March/October, 01:00 UTC; in the repeated October
hour the CP48 summer-time bit decides) and ``Reading.offset_derived`` says so.

The access number ACC counts the meter's frames (mod 256): it is the frame counter, and a repeat
of the last one (the meter repeats a frame that was not acknowledged) is dropped as a duplicate.
"""

import struct

from ..timeutil import utc_epoch
from . import reading as r
from .errors import (
    AuthKeyMissingError,
    DuplicateError,
    EnvelopeError,
    LayoutError,
    ParseError,
    WrongKeyError,
)

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_HEADER = const(15)  # C A CI ID(4) MAN(2) VER MED ACC STATUS CFG(2)
_FILL = const(0x2F)
_MAX_RECORDS = const(64)
_MAX_EXT = const(10)  # at most 10 DIFE / VIFE (EN 13757-3)

# Record header (DIF with its length nibble cleared, DIFEs, VIF, VIFEs) -> OBIS key
_RECORDS = {
    b"\x00\x03": r.A_PLUS,
    b"\x00\x83\x3c": r.A_MINUS,
    b"\x80\x10\xfb\x82\x73": "1-0:3.8.1",
    b"\x80\x10\xfb\x82\xf3\x3c": "1-0:4.8.1",
    b"\x00\x2b": r.P_PLUS,
    b"\x00\xab\x3c": r.P_MINUS,
    b"\x00\xfb\x14": r.Q_PLUS,
    b"\x00\xfb\x94\x3c": r.Q_MINUS,
    b"\x00\x83\xff\x04": r.AMIS_BILLING,
}
_TIME = b"\x00\x6d"
# DIF data-length nibble -> (bytes, struct code little-endian); BCD and variable length skipped
_SIZES = {1: (1, "b"), 2: (2, "h"), 3: (3, None), 4: (4, "i"), 6: (6, None), 7: (8, "q")}
_BCD = {9: 1, 10: 2, 11: 3, 12: 4, 14: 6}

try:
    struct.calcsize("<2xB")
    _HAS_PAD = True
except (ValueError, TypeError):
    _HAS_PAD = False


def cp48(b):
    """CP48 (EN 13757-3 type I) -> ((y, mo, d, h, mi, s), summer_flag).

    As the real AMIS captures show: seconds byte bits 0-5 and bit 6 = summer time; minute bits
    0-5; hour bits 0-4 with the weekday (1 = Monday) in bits 5-7; day bits 0-4 with the year's
    low 3 bits in bits 5-7; month bits 0-3 with the year's high 4 bits in bits 4-7.
    """
    sec, minute, hour, day, month = b[0] & 0x3F, b[1] & 0x3F, b[2] & 0x1F, b[3] & 0x1F, b[4] & 0x0F
    year = 2000 + (((b[3] & 0xE0) >> 5) | ((b[4] & 0xF0) >> 1))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and sec <= 59):
        raise ParseError("invalid AMIS date-time")
    return (year, month, day, hour, minute, sec), bool(b[0] & 0x40)


def _set_time(reading, raw):
    fields, summer = cp48(raw)
    reading.meter_time = fields
    reading.utc_offset = utc_epoch(fields, None, summer)[1]
    reading.offset_derived = True
    reading.dst = reading.utc_offset == 120


def _signed(v, size):
    bits = 8 * size
    return v - (1 << bits) if v >> (bits - 1) else v


class Template:
    """Learned record layout of one AMIS meter: header bytes compared, values unpacked."""

    __slots__ = ("length", "mask", "expected", "fmt", "slots", "keys", "time_index")

    def decode(self, plain, reading):
        if len(plain) != self.length:
            return False
        if int.from_bytes(plain, "big") & self.mask != self.expected:
            return False
        if _HAS_PAD:
            raw = struct.unpack_from(self.fmt, plain, 0)
        else:
            raw = [struct.unpack_from(code, plain, off)[0] for off, code in self.slots]
        values = reading.values
        t = self.time_index
        for i, key in enumerate(self.keys):
            if i == t:
                _set_time(reading, raw[i])
            else:
                values[key] = raw[i]
        reading.layout = "amis"
        return True


def _learn(plain, entries):
    """entries: (offset, struct code, key or None for the time), in offset order."""
    n = len(plain)
    mask = bytearray(b"\xff" * n)
    fmt = ["<"]
    pos = 0
    keys = []
    t_index = -1
    for off, code, key in entries:
        size = struct.calcsize("<" + code)
        mask[off : off + size] = bytes(size)
        if off > pos:
            fmt.append("%dx" % (off - pos))
        fmt.append(code)
        pos = off + size
        if key is None:
            t_index = len(keys)
        keys.append(key)
    t = Template()
    t.length = n
    t.mask = int.from_bytes(bytes(mask), "big")
    t.expected = int.from_bytes(bytes(plain), "big") & t.mask
    t.fmt = "".join(fmt)
    t.slots = [(e[0], "<" + e[1]) for e in entries]
    t.keys = keys
    t.time_index = t_index
    return t


def records(plain, reading, plan=None):
    """Walk the DIF/VIF records of ``plain`` into ``reading``; returns the number stored.

    :param plan: a list that receives ``(offset, struct code, key)`` per stored value, or
        None when a record cannot be re-read by a template (then no fast path is learned)
    """
    n = len(plain)
    p = 0
    stored = 0
    count = 0
    while p < n:
        dif = plain[p]
        if dif == _FILL:
            p += 1
            continue
        if dif & 0x0F == 0x0F:  # manufacturer data / more records follow: nothing we read
            break
        count += 1
        if count > _MAX_RECORDS:
            raise ParseError("too many AMIS records")
        start = p
        p += 1
        ext = 0
        last = dif
        while last & 0x80:  # DIFEs
            if p >= n or ext >= _MAX_EXT:
                raise ParseError("AMIS record header truncated")
            last = plain[p]
            p += 1
            ext += 1
        ext = 0
        last = 0x80
        while last & 0x80:  # VIF and VIFEs
            if p >= n or ext > _MAX_EXT:
                raise ParseError("AMIS record header truncated")
            last = plain[p]
            p += 1
            ext += 1
        nib = dif & 0x0F
        if nib == 0x0D:  # variable length: LVAR byte
            if p >= n:
                raise ParseError("AMIS record truncated")
            size = plain[p]
            p += 1
            if size >= 0xC0:
                size = 0  # unsupported forms: skipped (no reading)
            code = None
        elif nib in _SIZES:
            size, code = _SIZES[nib]
        elif nib in _BCD:
            size, code = _BCD[nib], None
        else:
            size, code = 0, None
        if p + size > n:
            raise ParseError("AMIS record truncated")
        head = bytes([dif & 0xF0]) + bytes(plain[start + 1 : p - (1 if nib == 0x0D else 0)])
        if head == _TIME and size == 6:
            raw = bytes(plain[p : p + 6])
            _set_time(reading, raw)
            if plan is not None:
                plan.append((p, "6s", None))
        else:
            key = _RECORDS.get(head)
            if key is not None and size:
                if nib in _BCD or nib == 0x0D:
                    plan = None  # rare encodings: no fast path, decoded below if BCD
                    if nib in _BCD:
                        v = 0
                        for k in range(p + size - 1, p - 1, -1):
                            v = v * 100 + (plain[k] >> 4) * 10 + (plain[k] & 0x0F)
                        reading.values[key] = v
                        stored += 1
                else:
                    v = 0
                    for k in range(p + size - 1, p - 1, -1):
                        v = (v << 8) | plain[k]
                    reading.values[key] = _signed(v, size)
                    stored += 1
                    if plan is not None:
                        if code is None:
                            plan = None  # 24/48-bit integers: general walk only
                        else:
                            plan.append((p, code, key))
        p += size
    return stored, plan


def decode(payload, decoder):
    """Decode one AMIS SND_UD payload (C through the data) into a Reading.

    :param decoder: the :class:`~smartmeter.protocol.dlms.Decoder` (key, counters, template)
    """
    n = len(payload)
    if decoder.layout not in ("auto", "amis"):
        raise LayoutError("METER_LAYOUT %s does not match this AMIS telegram" % decoder.layout)
    if n < _HEADER + 2:
        raise EnvelopeError("OMS header truncated")
    ident = bytes(payload[3:9])  # ID + MAN: the meter, for duplicate detection
    acc = payload[11]
    cfg = payload[13] | (payload[14] << 8)
    mode = (cfg >> 8) & 0x1F
    if ident == decoder._last_title and decoder._last_counter == acc:
        raise DuplicateError("repeated access number %d: duplicate dropped" % acc)
    data = memoryview(payload)[_HEADER:]
    dn = len(data)
    if mode == 0 and data[0] == _FILL and data[1] == _FILL:
        plain = data
        security = "plain"
    elif mode in (0, 5):
        gcm = decoder.gcm
        if gcm is None:
            raise AuthKeyMissingError("no meter key configured")
        blocks = (cfg >> 4) & 0x0F if mode == 5 else 0
        enc = 16 * blocks if blocks else dn - dn % 16
        if not enc or enc > dn:
            raise EnvelopeError("OMS encrypted length does not fit the frame")
        iv = decoder._iv
        iv[0] = payload[7]
        iv[1] = payload[8]
        iv[2:6] = payload[3:7]
        iv[6] = payload[9]
        iv[7] = payload[10]
        for k in range(8, 16):
            iv[k] = acc
        plain = memoryview(decoder._plain)[:dn]
        gcm.cipher.cbc_decrypt(iv, data[:enc], plain[:enc])
        if enc < dn:
            plain[enc:] = data[enc:]
        if plain[0] != _FILL or plain[1] != _FILL:
            raise WrongKeyError("decrypted AMIS data has no 2F 2F fill: wrong key?")
        security = "encrypted"
    else:
        raise EnvelopeError("unsupported OMS security mode %d" % mode)
    reading = r.Reading()
    tpl = decoder._oms_template
    if tpl is None or not tpl.decode(plain, reading):
        # learn from the second telegram of this length, like the DLMS path
        plan = [] if decoder.learn and decoder._oms_walked == dn else None
        stored, plan = records(plain, reading, plan)
        if not stored:
            raise ParseError("AMIS telegram carried no known records")
        reading.layout = "amis"
        if plan:
            decoder._oms_template = _learn(plain, plan)
        decoder._oms_walked = dn
    else:
        decoder.fast += 1
    reading.frame_counter = acc
    reading.security = security
    decoder._last_title = ident
    decoder._last_counter = acc
    return reading
