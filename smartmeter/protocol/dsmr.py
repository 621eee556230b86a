# SPDX-License-Identifier: MIT
"""DSMR 5 text telegrams (P1), as the Sagemcom T210-D-r of Energienetze Steiermark sends them
inside a general-glo-ciphering envelope.

A telegram is ASCII: ``/XXX5<identification>``, a blank line, one object per line such as
``1-0:1.8.0(007112944*Wh)`` or ``0-0:1.0.0(230817152425S)``, then ``!`` and the CRC as four hex
digits. The CRC is CRC-16/ARC (reflected polynomial 0xA001, initial value 0) over everything from
``/`` through ``!``; a mismatch is a corrupted (or wrongly keyed) telegram and is rejected.

Values: electricity registers with a unit become base units, energy and power as integers
(``Wh``/``kWh`` -> Wh, ``W``/``kW`` -> W, ``varh``/``kvarh`` -> varh, ``var``/``kvar`` -> var;
``(001234.567*kWh)`` -> 1234567 Wh, exact integer arithmetic, never through a float); voltage and
current as floats. Lines without a unit (versions, counters, tariff indicators) carry no reading
and are skipped. ``0-0:1.0.0`` is the meter time: ``YYMMDDhhmmss`` plus ``S`` (summer, +02:00)
or ``W`` (winter, +01:00). ``0-0:96.1.1`` (equipment id, hex-coded text) becomes the meter number.

A learned fast path (like :mod:`~smartmeter.protocol.fastpath` for A-XDR) handles the next
telegrams of the same meter: every byte outside the values is compared at once as one big
integer, the values are cut out at their learned offsets. The CRC is checked on every telegram.
"""

from . import reading as r
from .errors import ParseError, WrongKeyError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_LINES = const(96)  # bounded: a hostile text cannot grow the work without end
_SLASH = const(0x2F)
_BANG = const(0x21)

# unit text -> (factor numerator as a power of ten, integer result)
_UNITS = {
    b"Wh": (0, True),
    b"kWh": (3, True),
    b"W": (0, True),
    b"kW": (3, True),
    b"varh": (0, True),
    b"kvarh": (3, True),
    b"var": (0, True),
    b"kvar": (3, True),
    b"VAh": (0, True),
    b"kVAh": (3, True),
    b"VA": (0, True),
    b"kVA": (3, True),
    b"V": (0, False),
    b"A": (0, False),
}
_TIME = b"0-0:1.0.0"
_EQUIPMENT = b"0-0:96.1.1"


def _make_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        t.append(c)
    return tuple(t)


_CRC_TABLE = _make_table()


def crc16_arc_py(data, crc=0):
    """CRC-16/ARC: reflected poly 0xA001 (0x8005), init 0, no final XOR. Runs on the device."""
    t = _CRC_TABLE
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc


crc16_arc = crc16_arc_py
_T16 = None


def _crc16_arc_wide(data, crc=0):
    # CPython: 16 bits per step with a 64 Ki-entry table (built on first use, 128 KiB): the
    # register is shifted out completely, so crc' = T16[crc ^ next little-endian word]
    global _T16
    t = _T16
    if t is None:
        from array import array

        t8 = _CRC_TABLE
        t = array("H", bytes(131072))
        for w in range(65536):
            c = (w >> 8) ^ t8[w & 0xFF]
            t[w] = (c >> 8) ^ t8[c & 0xFF]
        _T16 = t
    mv = memoryview(data)
    n = len(mv)
    for w in mv[: n & ~1].cast("H"):
        crc = t[crc ^ w]
    if n & 1:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ mv[n - 1]) & 0xFF]
    return crc


try:
    import sys

    if sys.implementation.name == "cpython" and sys.byteorder == "little":
        crc16_arc = _crc16_arc_wide
except (ImportError, AttributeError):
    pass


def _hexval(ch):
    if 48 <= ch <= 57:
        return ch - 48
    ch |= 0x20
    if 97 <= ch <= 102:
        return ch - 87
    return -1


def _fail(text, authenticated, msg):
    """A malformed telegram: random bytes (a wrong key when there is no tag) or corruption."""
    if not authenticated:
        for b in text:
            if b > 126 or (b < 32 and b not in (13, 10)):
                return WrongKeyError("decrypted data is not a meter reading: wrong key?")
    return ParseError(msg)


def _check(text, authenticated):
    """Check the frame and CRC; return the index of ``!``."""
    n = len(text)
    if n < 8 or text[0] != _SLASH:
        raise WrongKeyError("decrypted data is not a meter reading: wrong key?")
    bang = -1
    i = n - 1
    stop = n - 12 if n > 12 else 0  # "!XXXX" then at most a few line ends/padding
    while i >= stop:
        if text[i] == _BANG:
            bang = i
            break
        i -= 1
    if bang < 0 or bang + 5 > n:
        raise _fail(text, authenticated, "DSMR telegram has no end line")
    want = 0
    for k in range(bang + 1, bang + 5):
        v = _hexval(text[k])
        if v < 0:
            raise _fail(text, authenticated, "DSMR CRC is not hex")
        want = (want << 4) | v
    for k in range(bang + 5, n):
        if text[k] not in (13, 10, 0):
            raise _fail(text, authenticated, "unexpected bytes after the DSMR telegram")
    if crc16_arc(text[: bang + 1]) != want:
        raise _fail(text[:bang], authenticated, "DSMR CRC mismatch: corrupted telegram")
    return bang


def _number(raw, exp10, as_int):
    """``b"001234.567"`` scaled by 10**exp10 -> int (rounded half up) or float."""
    neg = False
    if raw[:1] == b"-":
        neg = True
        raw = raw[1:]
    dot = raw.find(b".")
    if dot < 0:
        digits, decimals = raw, 0
    else:
        digits, decimals = raw[:dot] + raw[dot + 1 :], len(raw) - dot - 1
    if not digits or not digits.isdigit():
        raise ParseError("DSMR value is not a number")
    v = int(digits)
    if as_int:
        shift = exp10 - decimals
        if shift >= 0:
            v *= 10**shift
        else:
            div = 10 ** (-shift)
            v = (v + div // 2) // div
        return -v if neg else v
    f = v * 10**exp10 / 10**decimals
    return -f if neg else f


def _time(raw):
    # YYMMDDhhmmssX, X = S (summer, +02:00) or W (winter, +01:00)
    if len(raw) != 13 or not raw[:12].isdigit():
        raise ParseError("DSMR timestamp malformed")
    f = [int(raw[k : k + 2]) for k in range(0, 12, 2)]
    year, month, day, hour, minute, second = 2000 + f[0], f[1], f[2], f[3], f[4], f[5]
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 59):
        raise ParseError("invalid DSMR timestamp")
    flag = raw[12]
    if flag == 0x53:  # S
        offset, dst = 120, True
    elif flag == 0x57:  # W
        offset, dst = 60, False
    else:
        offset, dst = None, None
    return (year, month, day, hour, minute, second), offset, dst


def _text(raw):
    # equipment ids are hex-coded text ("4B38..."); keep printable ASCII only
    try:
        if len(raw) % 2 == 0 and raw:
            raw = bytes.fromhex(raw.decode())
    except ValueError:  # UnicodeError is a ValueError too
        pass
    return "".join(chr(b) for b in raw if 32 <= b <= 126).strip()


def _is_code(code):
    """True for ``A-B:C.D.E`` made of digits (what a DSMR object code is)."""
    for b in code:
        if not (48 <= b <= 57 or b in (45, 58, 46)):  # digits - : .
            return False
    return 0 < len(code) <= 16


class Template:
    """The learned shape of one meter's DSMR telegrams: value slices and a byte mask."""

    __slots__ = ("length", "mask", "expected", "items", "time_at", "consts")

    def decode(self, text, reading):
        if len(text) != self.length:
            return False
        if int.from_bytes(text, "big") & self.mask != self.expected:
            return False
        values = reading.values
        for key, value in self.consts:  # text values: their bytes were compared by the mask
            values[key] = value
        raw = bytes(text)
        try:
            for a, b, key, exp10, as_int in self.items:
                if exp10 < 0:  # learned as plain digits: int() of the slice
                    values[key] = int(raw[a:b])
                else:
                    values[key] = _number(raw[a:b], exp10, as_int)
        except (ValueError, ParseError):
            values.clear()  # not this shape after all: the general path decides
            return False
        t = self.time_at
        if t >= 0:
            reading.meter_time, reading.utc_offset, reading.dst = _time(bytes(text[t : t + 13]))
        reading.layout = "t210dr"
        return True


def _learn(text, slices, time_at, consts):
    n = len(text)
    mask = bytearray(b"\xff" * n)
    for a, b, _key, _e, _i in slices:
        mask[a:b] = bytes(b - a)
    if time_at >= 0:
        mask[time_at : time_at + 13] = bytes(13)
    t = Template()
    t.length = n
    t.mask = int.from_bytes(bytes(mask), "big")
    t.expected = int.from_bytes(bytes(text), "big") & t.mask
    items = []
    for a, b, key, exp10, as_int in slices:
        if exp10 == 0 and as_int and bytes(text[a:b]).isdigit():
            exp10 = -1  # marker: plain digits, no unit prefix
        items.append((a, b, key, exp10, as_int))
    t.items = tuple(items)
    t.time_at = time_at
    t.consts = tuple(consts)
    return t


def decode(text, decoder, authenticated=False):
    """Decode a DSMR telegram (bytes-like) into a Reading.

    :param decoder: the :class:`~smartmeter.protocol.dlms.Decoder` (its learned template and
        layout setting are used)
    :raises WrongKeyError: the text is not text at all
    :raises ParseError: CRC mismatch or a malformed line
    :raises LayoutError: METER_LAYOUT forces a different layout
    """
    from .errors import LayoutError

    if decoder.layout not in ("auto", "t210dr"):
        raise LayoutError("METER_LAYOUT %s does not match this DSMR telegram" % decoder.layout)
    bang = _check(text, authenticated)
    reading = r.Reading()
    tpl = decoder._dsmr_template
    if tpl is not None and tpl.decode(text, reading):
        decoder.fast += 1
        return reading
    raw = bytes(text[:bang])
    slices = []
    consts = []
    time_at = -1
    pos = raw.find(b"\n")  # the identification line carries no value
    lines = 0
    while 0 <= pos < bang:
        start = pos + 1
        end = raw.find(b"\n", start)
        if end < 0:
            end = bang
        lines += 1
        if lines > _MAX_LINES:
            raise ParseError("DSMR telegram has too many lines")
        pos = end if end < bang else -1
        open_ = raw.find(b"(", start, end)
        if open_ <= start:
            continue
        code = raw[start:open_]
        close = raw.find(b")", open_, end)
        if close < 0:
            raise ParseError("DSMR line malformed")
        # the value is the last parenthesis group of the line (gas lines carry a time first)
        while True:
            nxt = raw.find(b"(", close, end)
            if nxt < 0:
                break
            c2 = raw.find(b")", nxt, end)
            if c2 < 0:
                raise ParseError("DSMR line malformed")
            open_, close = nxt, c2
        body = raw[open_ + 1 : close]
        if code == _TIME:
            reading.meter_time, reading.utc_offset, reading.dst = _time(body)
            time_at = open_ + 1
            continue
        if code == _EQUIPMENT:
            text_value = _text(body)
            reading.values[r.METER_NUMBER] = text_value
            consts.append((r.METER_NUMBER, text_value))
            continue
        star = body.find(b"*")
        if star < 0 or not code.startswith(b"1-0:"):
            continue  # no unit: a version, counter or indicator, not a reading
        unit = _UNITS.get(body[star + 1 :])
        if unit is None:
            continue
        if not _is_code(code):
            continue
        key = code.decode()
        reading.values[key] = _number(body[:star], unit[0], unit[1])
        slices.append((open_ + 1, open_ + 1 + star, key, unit[0], unit[1]))
    if not reading.values:
        raise ParseError("DSMR telegram carried no values")
    reading.layout = "t210dr"
    n = len(text)
    if decoder.learn and decoder._dsmr_walked == n:  # the second telegram of this length
        decoder._dsmr_template = _learn(text, slices, time_at, consts)
    decoder._dsmr_walked = n
    return reading
