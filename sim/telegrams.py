# SPDX-License-Identifier: MIT
"""Build DLMS telegrams like real Austrian meters do (PC side: simulator and tests).

The inverse of the firmware's decoder: A-XDR encoding, the five body layouts, the
general-glo-ciphering envelope. Framing (M-Bus / HDLC) is in ``sim.frames``.
"""

import struct
from functools import lru_cache

from smartmeter.protocol import reading as r
from smartmeter.protocol.crypto import Gcm


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
