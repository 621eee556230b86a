# SPDX-License-Identifier: MIT
"""Build DLMS telegrams like real Austrian meters do (PC side: simulator and tests).

The inverse of the firmware's decoder: A-XDR encoding, the five body layouts, the
general-glo-ciphering envelope. Framing (M-Bus / HDLC) is in ``sim.frames``.
"""

import struct
from functools import lru_cache

from smartmeter.protocol import reading as r
from smartmeter.protocol.crypto import Gcm
from smartmeter.timeutil import days_from_civil


# -- A-XDR ------------------------------------------------------------------------------------
def length(n):
    """A-XDR length in its shortest form."""
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def octets(data):
    return b"\x09" + length(len(data)) + bytes(data)


def u32(v):
    return b"\x06" + struct.pack(">I", v)


def i32(v):
    return b"\x05" + struct.pack(">i", v)


def u16(v):
    return b"\x12" + struct.pack(">H", v)


def i16(v):
    return b"\x10" + struct.pack(">h", v)


def i8(v):
    return b"\x0f" + struct.pack(">b", v)


def enum(v):
    return b"\x16" + bytes([v])


def structure(*items):
    return b"\x02" + length(len(items)) + b"".join(items)


@lru_cache(maxsize=256)
def obis(text):
    """ "1-0:1.8.0" -> 6 bytes (F = 255)."""
    ab, cde = text.split(":")
    a, b = ab.split("-")
    c, d, e = cde.split(".")
    return bytes([int(a), int(b), int(c), int(d), int(e), 255])


def datetime_bytes(fields, offset=60, dst=False):
    """COSEM date-time: offset in minutes east of UTC (None = unspecified)."""
    y, mo, d, h, mi, s = fields
    from smartmeter.timeutil import days_from_civil

    weekday = (days_from_civil(y, mo, d) + 3) % 7 + 1  # Monday = 1
    dev = 0x8000 if offset is None else (-offset) & 0xFFFF
    status = 0x80 if dst else 0x00
    return struct.pack(">HBBBBBBBHB", y, mo, d, weekday, h, mi, s, 0, dev, status)


def data_notification(invoke_id, dt, body):
    """0F | invoke id | 0C date-time | body."""
    return b"\x0f" + struct.pack(">I", invoke_id) + b"\x0c" + dt + body


# -- units and scalers as Austrian meters send them --------------------------------------------
# obis: (encoder, scaler, unit)
_SPEC = {
    r.A_PLUS: (u32, 0, 30),
    r.A_MINUS: (u32, 0, 30),
    r.R_PLUS: (u32, 0, 32),
    r.R_MINUS: (u32, 0, 32),
    r.P_PLUS: (u32, 0, 27),
    r.P_MINUS: (u32, 0, 27),
    r.Q_PLUS: (u32, 0, 29),
    r.Q_MINUS: (u32, 0, 29),
    r.U_L1: (u16, -1, 35),
    r.U_L2: (u16, -1, 35),
    r.U_L3: (u16, -1, 35),
    r.I_L1: (u16, -2, 33),
    r.I_L2: (u16, -2, 33),
    r.I_L3: (u16, -2, 33),
    r.POWER_FACTOR: (u16, -3, 255),
}


def raw_value(key, value):
    """Base-unit value -> the integer the meter sends with its scaler."""
    scaler = _SPEC[key][1]
    return int(round(value * 10 ** (-scaler)))


@lru_cache(maxsize=64)
def _scaler_unit(key):
    _enc, scaler, unit = _SPEC[key]
    return structure(i8(scaler), enum(unit))


def _entry(key, value, pf_signed=False):
    enc = _SPEC[key][0]
    if key == r.POWER_FACTOR and pf_signed:
        enc = i16
    return enc(raw_value(key, value)), _scaler_unit(key)


# -- the five body layouts ---------------------------------------------------------------------
_NETZNOE_ORDER = (r.A_PLUS, r.A_MINUS, r.P_PLUS, r.P_MINUS)
_NETZNOE_ORDER += r.VOLTAGES + r.CURRENTS + (r.POWER_FACTOR,)
_TINETZ_ORDER = r.VOLTAGES + r.CURRENTS + (r.P_PLUS, r.P_MINUS, r.A_PLUS, r.A_MINUS)
_TINETZ_ORDER += (r.R_PLUS, r.R_MINUS)


def body_netznoe(values, dt, pf_signed=False):
    """Netz NOE flat structure of 35 (Kaifa MA309M, Sagemcom T210-D)."""
    items = [octets(dt)]
    for key in _NETZNOE_ORDER:
        value, su = _entry(key, values[key], pf_signed)
        items += [octets(obis(key)), value, su]
    items.append(octets(values[r.METER_NUMBER].encode()))
    return structure(*items)


def body_tinetz(values, dt):
    """OBIS-structure layout (TINETZ, Salzburg, VKW, IKB): sends whichever keys are present."""
    items = [octets(obis("0-0:1.0.0")), octets(dt)]
    items.append(structure(octets(obis(r.METER_NUMBER)), octets(values[r.METER_NUMBER].encode())))
    name = values.get(r.DEVICE_NAME, "KFM" + values[r.METER_NUMBER])
    items.append(structure(octets(obis(r.DEVICE_NAME)), octets(name.encode())))
    for key in _TINETZ_ORDER:
        if key in values:
            value, su = _entry(key, values[key])
            items.append(structure(octets(obis(key)), value, su))
    return structure(*items)


def body_burgenland(values):
    """Netz Burgenland E450 positional list of 14."""
    items = [u16(int(round(values[k]))) for k in r.VOLTAGES]
    items += [u16(int(round(values[k] * 100))) for k in r.CURRENTS]
    items += [u32(values[k]) for k in (r.P_PLUS, r.P_MINUS, r.A_PLUS, r.A_MINUS)]
    items += [u16(0), u16(0), u16(0), octets(values[r.METER_NUMBER].encode())]
    return structure(*items)


def body_kng(values, fields):
    """KNG AM550 positional list of 12."""
    y, mo, d, h, mi, s = fields
    items = [octets(obis("0-6:25.9.0")), octets(values[r.METER_NUMBER].encode())]
    items.append(octets(bytes([h, mi, s, 0])))
    items.append(octets(struct.pack(">HBBB", y, mo, d, 0xFF)))
    for key in (r.A_PLUS, r.A_MINUS, r.R_PLUS, r.R_MINUS, r.P_PLUS, r.P_MINUS):
        items.append(u32(values[key]))
    items += [octets(b""), octets(b"")]
    return structure(*items)


def body_obis_pairs(values, dt):
    """L+G E450 block-transfer layout: date-time, then (OBIS, uint32) pairs without scalers."""
    items = [octets(dt)]
    for key in (r.A_PLUS, r.P_PLUS, r.A_MINUS, r.P_MINUS, r.R_PLUS, r.Q_PLUS, r.R_MINUS, r.Q_MINUS):
        if key in values:
            items += [octets(obis(key)), u32(values[key])]
    return structure(*items)


def plaintext(layout, values, fields, offset=60, dst=False, invoke_id=1, pf_signed=False):
    """A whole data-notification APDU for ``layout``."""
    dt = datetime_bytes(fields, offset, dst)
    if layout == "netznoe":
        body = body_netznoe(values, dt, pf_signed)
    elif layout == "tinetz":
        body = body_tinetz(values, dt)
    elif layout == "burgenland":
        body = body_burgenland(values)
        dt = datetime_bytes(fields, None, dst)
    elif layout == "kng":
        body = body_kng(values, fields)
    elif layout == "obis-pairs":
        body = body_obis_pairs(values, dt)
        dt = datetime_bytes(fields, None, dst)
    else:
        raise ValueError("unknown layout " + layout)
    return data_notification(invoke_id, dt, body)


def envelope(apdu, key, system_title, frame_counter, security=0x20, auth_key=None, gcm=None):
    """Encrypt into a general-glo-ciphering APDU (with a 12-byte tag when security & 0x10).

    :param gcm: a ``Gcm`` to reuse (the virtual meter keeps one); else one is made for ``key``
    """
    gcm = gcm if gcm is not None else Gcm(key, auth_key)
    ciphertext, tag = gcm.encrypt(system_title, frame_counter, security, apdu)
    body = bytes([security]) + struct.pack(">I", frame_counter) + ciphertext
    if security & 0x10:
        body += tag
    return b"\xdb\x08" + bytes(system_title) + length(len(body)) + body


# -- Wiener Netze: positional 8-value list (AM550 / E450), IM350 with the meter ID first ---------
_WN_ORDER = (r.A_PLUS, r.A_MINUS, r.R_PLUS, r.R_MINUS, r.P_PLUS, r.P_MINUS, r.Q_PLUS, r.Q_MINUS)


def body_wienernetze(values, dt, im350=False):
    """``02 09``: date-time + 8 x uint32 (+A -A +R -R +P -P +Q -Q); IM350: ``02 0A``, ID first."""
    items = [u32(int(values.get(k, 0))) for k in _WN_ORDER]
    head = [octets(dt)]
    if im350:
        head.insert(0, octets(("SMS" + values[r.METER_NUMBER]).encode()[:16].ljust(16, b"0")))
    return structure(*(head + items))


# -- Klagenfurt E450: self-describing body (capture objects, then their values) ------------------
_KLU_OBJECTS = (  # (class id, OBIS, attribute, encoder of the value)
    (40, "0-8:25.9.0", 1, None),  # push setup: its logical name
    (1, r.METER_NUMBER, 2, "text"),
    (8, "0-0:1.0.0", 2, "time"),
    (3, r.P_PLUS, 2, "u32"),
    (3, r.P_MINUS, 2, "u32"),
    (3, r.A_PLUS, 2, "u32"),
    (3, r.A_MINUS, 2, "u32"),
    (3, r.Q_PLUS, 2, "u32"),
    (3, r.Q_MINUS, 2, "u32"),
    (3, r.R_PLUS, 2, "u32"),
    (3, r.R_MINUS, 2, "u32"),
    (3, r.I_L1, 2, "centi"),
    (3, r.I_L2, 2, "centi"),
    (3, r.I_L3, 2, "centi"),
    (3, r.U_L1, 2, "volt"),
    (3, r.U_L2, 2, "volt"),
    (3, r.U_L3, 2, "volt"),
)


def _capture_object(class_id, code, attribute):
    return structure(u16(class_id), octets(obis(code)), i8(attribute), u16(0))


def body_e450_list(values, dt):
    """Klagenfurt's E450: ``02 12``: the push setup's capture-object array, then 17 values."""
    objects = [_capture_object(40, "0-8:25.9.0", 2)]
    objects += [_capture_object(c, code, a) for c, code, a, _enc in _KLU_OBJECTS]
    items = [b"\x01" + length(len(objects)) + b"".join(objects)]
    for _c, code, _a, enc in _KLU_OBJECTS:
        if enc is None:
            items.append(octets(obis(code)))
        elif enc == "text":
            items.append(octets(values[r.METER_NUMBER][-8:].encode()))
        elif enc == "time":
            items.append(octets(dt))
        elif enc == "u32":
            items.append(u32(int(values.get(code, 0))))
        elif enc == "centi":
            items.append(u16(int(round(values.get(code, 0) * 100))))
        else:
            items.append(u16(int(round(values.get(code, 0)))))
    return structure(*items)


# -- Energienetze Steiermark T210-D-r: DSMR 5 text inside a raw GCM burst -------------------------
def crc16_arc(data):
    """CRC-16/ARC (poly 0xA001 reflected, init 0): the DSMR telegram checksum."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


_DSMR = (
    ("1-0:1.8.0", "Wh"),
    ("1-0:1.8.1", "Wh"),
    ("1-0:1.8.2", "Wh"),
    (r.P_PLUS, "W"),
    ("1-0:2.8.0", "Wh"),
    ("1-0:2.8.1", "Wh"),
    ("1-0:2.8.2", "Wh"),
    (r.P_MINUS, "W"),
    ("1-0:3.8.0", "varh"),
    ("1-0:3.8.1", "varh"),
    ("1-0:3.8.2", "varh"),
    (r.Q_PLUS, "var"),
    ("1-0:4.8.0", "varh"),
    ("1-0:4.8.1", "varh"),
    ("1-0:4.8.2", "varh"),
    (r.Q_MINUS, "var"),
)


def dsmr_text(values, fields, dst, ident="EST5\\253717584_A"):
    """The DSMR 5 telegram a T210-D-r sends (``S``/``W`` time suffix, CRC16 after ``!``)."""
    y, mo, d, h, mi, s = fields
    lines = ["/" + ident, "", "1-3:0.2.8(50)"]
    lines.append(
        "0-0:1.0.0(%02d%02d%02d%02d%02d%02d%s)" % (y % 100, mo, d, h, mi, s, "SW"[not dst])
    )
    for code, unit in _DSMR:
        if code in values:
            lines.append("%s(%09d*%s)" % (code, int(values[code]), unit))
    text = ("\r\n".join(lines) + "\r\n!").encode()
    return text + b"%04X\r\n" % crc16_arc(text)


# -- Netz OOE AMIS: wired M-Bus SND_UD, OMS mode 5 (AES-128-CBC) ----------------------------------
AMIS_MAN = b"\x2d\x4c"  # "SAM"
AMIS_VER = 0x01
AMIS_MED = 0x0E
SND_NKE = b"\x10\x40\xf0\x30\x16"


def cp48(fields, dst):
    """M-Bus date-time type I (6 bytes) as the AMIS meters write it (see the real captures).

    Seconds in bits 0-5 of byte 0 with the summer-time flag in bit 6; the weekday (1 = Monday)
    in bits 5-7 of the hour byte; the year split over the day and month bytes.
    """
    y, mo, d, h, mi, s = fields
    yy = y - 2000
    weekday = (days_from_civil(y, mo, d) + 3) % 7 + 1  # 1970-01-01 was a Thursday (4)
    return bytes(
        ((s & 0x3F) | (0x40 if dst else 0), mi & 0x3F, (h & 0x1F) | (weekday << 5))
        + ((d & 0x1F) | ((yy & 7) << 5), (mo & 0x0F) | ((yy >> 3) << 4), 0)
    )


def amis_records(values, fields, dst):
    """The 80-byte plaintext: ``2F 2F``, the fixed DIF/VIF records (little-endian), ``2F`` fill."""
    le = struct.Struct("<I")
    out = bytearray(b"\x2f\x2f\x06\x6d" + cp48(fields, dst))
    for head, key in (
        (b"\x04\x03", r.A_PLUS),
        (b"\x04\x83\x3c", r.A_MINUS),
        (b"\x84\x10\xfb\x82\x73", "1-0:3.8.1"),
        (b"\x84\x10\xfb\x82\xf3\x3c", "1-0:4.8.1"),
        (b"\x04\x2b", r.P_PLUS),
        (b"\x04\xab\x3c", r.P_MINUS),
        (b"\x04\xfb\x14", r.Q_PLUS),
        (b"\x04\xfb\x94\x3c", r.Q_MINUS),
    ):
        out += head + le.pack(int(values.get(key, 0)) & 0xFFFFFFFF)
    out += b"\x04\x83\xff\x04" + struct.pack("<i", int(values.get("1-0:1.128.0", 0)))
    out += b"\x2f" * (80 - len(out))
    return bytes(out)


def amis_frame(values, fields, dst, key, ident, acc, fcb=False):
    """One AMIS SND_UD long frame (101 bytes): header, CBC ciphertext, checksum, stop."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    plain = amis_records(values, fields, dst)
    ident_le = struct.pack("<I", ident)
    iv = AMIS_MAN + ident_le + bytes((AMIS_VER, AMIS_MED)) + bytes((acc,)) * 8
    enc = Cipher(algorithms.AES(bytes(key)), modes.CBC(iv)).encryptor()
    ct = enc.update(plain) + enc.finalize()
    head = bytes((0x73 if fcb else 0x53, 0xF0, 0x5B)) + ident_le + AMIS_MAN
    head += bytes((AMIS_VER, AMIS_MED, acc, 0x00)) + struct.pack("<H", 0x0550)
    body = head + ct
    return bytes((0x68, len(body), len(body), 0x68)) + body + bytes((sum(body) & 0xFF, 0x16))
