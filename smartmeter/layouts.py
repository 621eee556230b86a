# SPDX-License-Identifier: MIT
"""Map a data-notification body onto OBIS-keyed values, whatever shape the meter sends.

Austrian meters use four body shapes (see docs): OBIS codes with scaler/unit, flat or nested
(Netz NOE, TINETZ/Salzburg/VKW/IKB, L+G E450 block transfer without scalers), and two positional
lists with no OBIS codes at all (Netz Burgenland E450, KNG AM550). The shape is detected from
the body; ``METER_LAYOUT`` may force one. Each value is scaled with the frame's own scaler.
"""

from . import reading as r
from .axdr import parse_datetime
from .errors import LayoutError, ParseError

LAYOUTS = ("netznoe", "tinetz", "obis-pairs", "burgenland", "kng")

# Units that stay integers (energy, power): W, VA, var, Wh, VAh, varh
_INT_UNITS = (27, 28, 29, 30, 31, 32)
# OBIS C values that are energy/power when the frame carries no unit (pairs without scalers)
_INT_C = (1, 2, 3, 4, 9, 10, 15, 16)

_CLOCK = b"\x00\x00\x01\x00\x00\xff"
_KNG_LIST = b"\x00\x06\x19\x09\x00\xff"  # 0-6:25.9.0, the AM550 list id

_NAMES = {}  # bytes(6) -> interned OBIS text, filled lazily


def obis_text(code):
    """``b'\\x01\\x00\\x01\\x08\\x00\\xff'`` -> ``"1-0:1.8.0"`` (interned for known codes)."""
    name = _NAMES.get(code)
    if name is None:
        name = "%d-%d:%d.%d.%d" % (code[0], code[1], code[2], code[3], code[4])
        if len(_NAMES) < 64:  # bounded: a hostile frame cannot grow the table
            _NAMES[code] = name
    return name


def scale(value, scaler, unit, c_field=None):
    """Apply ``value * 10**scaler``: integers for energy/power units, floats otherwise."""
    if isinstance(value, (bytes, str, list)) or value is None or isinstance(value, bool):
        return value
    is_int = unit in _INT_UNITS or (unit is None and c_field in _INT_C)
    if scaler == 0:
        return int(value) if is_int else (value if unit is None else float(value))
    if scaler > 0:
        v = value * 10**scaler
        return int(v) if is_int else float(v)
    div = 10 ** (-scaler)
    if is_int:
        return (value + div // 2) // div if value >= 0 else -((-value + div // 2) // div)
    return value / div


def _text(raw):
    try:
        text = bytes(raw).decode()
    except UnicodeError:
        return bytes(raw).hex().upper()
    # Strip NULs some meters pad with; keep printable ASCII only
    return "".join(ch for ch in text if " " <= ch <= "~").strip()


def _is_obis(v):
    return isinstance(v, bytes) and len(v) == 6


def _is_scaler_unit(v):
    return (
        isinstance(v, list)
        and len(v) == 2
        and isinstance(v[0], int)
        and isinstance(v[1], int)
        and -128 <= v[0] <= 127
        and not isinstance(v[0], bool)
    )


def _set_time(reading, raw):
    if reading.meter_time is None and isinstance(raw, bytes) and len(raw) == 12:
        reading.meter_time, reading.utc_offset, reading.dst = parse_datetime(raw)


def _store(reading, code, value, scaler_unit):
    """Store one OBIS entry: text for ids, scaled numbers otherwise."""
    if code == _CLOCK:
        _set_time(reading, value)
        return
    name = obis_text(code)
    if isinstance(value, bytes):
        if code[0] == 0 and code[2] in (96, 42):  # meter number, logical device name
            reading.values[name] = _text(value)
        return  # other octet-strings (dates, list ids) carry no reading
    if value is None or isinstance(value, list):
        return
    if isinstance(value, str):
        reading.values[name] = value
        return
    if scaler_unit is None:
        reading.values[name] = scale(value, 0, None, code[2])
    else:
        reading.values[name] = scale(value, scaler_unit[0], scaler_unit[1])


def _obis_walk(body, reading):
    """Walk a body of OBIS entries, flat (obis, value, [scaler, unit]) or nested structures.

    :returns: (entries found, scalers seen, nested entries seen)
    """
    entries = scalers = nested = 0
    i = 0
    n = len(body)
    while i < n:
        item = body[i]
        if _is_obis(item) and i + 1 < n:
            su = body[i + 2] if i + 2 < n and _is_scaler_unit(body[i + 2]) else None
            _store(reading, item, body[i + 1], su)
            entries += 1
            scalers += su is not None
            i += 3 if su is not None else 2
            continue
        if isinstance(item, list) and len(item) in (2, 3) and _is_obis(item[0]):
            su = item[2] if len(item) == 3 and _is_scaler_unit(item[2]) else None
            _store(reading, item[0], item[1], su)
            entries += 1
            nested += 1
            scalers += su is not None
        elif isinstance(item, bytes) and len(item) == 12 and i == 0:
            _set_time(reading, item)  # Netz NOE: a bare date-time opens the body
        elif isinstance(item, bytes) and i == n - 1 and 0 < len(item) <= 32:
            reading.values[r.METER_NUMBER] = _text(item)  # Netz NOE: meter number, no OBIS code
        i += 1
    return entries, scalers, nested


def _ints(body, start, stop):
    for k in range(start, stop):
        v = body[k]
        if not isinstance(v, int) or isinstance(v, bool):
            return False
    return True


def _burgenland(body, reading):
    # U1 U2 U3 (V), I1 I2 I3 (0.01 A), P+ P- (W), A+ A- (Wh), 3 unnamed uint16, meter id
    if len(body) < 10 or not _ints(body, 0, 10):
        raise LayoutError("body does not match the Netz Burgenland list")
    v = reading.values
    for k, key in enumerate(r.VOLTAGES):
        v[key] = float(body[k])
    for k, key in enumerate(r.CURRENTS):
        v[key] = body[3 + k] / 100
    v[r.P_PLUS], v[r.P_MINUS], v[r.A_PLUS], v[r.A_MINUS] = body[6], body[7], body[8], body[9]
    last = body[-1]
    if isinstance(last, bytes) and 0 < len(last) <= 32:
        v[r.METER_NUMBER] = _text(last)


def _kng(body, reading):
    # list id, meter id, time (hh mm ss hs), date (yyyy mm dd wd), A+ A- R+ R- (Wh/varh), P+ P- (W)
    if len(body) < 10 or not _ints(body, 4, 10):
        raise LayoutError("body does not match the KNG AM550 list")
    v = reading.values
    if isinstance(body[1], bytes) and body[1]:
        v[r.METER_NUMBER] = _text(body[1])
    keys = (r.A_PLUS, r.A_MINUS, r.R_PLUS, r.R_MINUS, r.P_PLUS, r.P_MINUS)
    for k, key in enumerate(keys):
        v[key] = body[4 + k]
    if reading.meter_time is None:
        t, d = body[2], body[3]
        if isinstance(t, bytes) and isinstance(d, bytes) and len(t) >= 3 and len(d) >= 4:
            raw = bytes(d[:4]) + bytes(t[:3]) + b"\x00\x80\x00\xff"
            reading.meter_time, reading.utc_offset, reading.dst = parse_datetime(raw)


def detect(body):
    """Name the layout of a data-notification body (a list), or raise LayoutError."""
    if not isinstance(body, list) or not body:
        raise LayoutError("telegram body is not a list of values")
    if body[0] == _KNG_LIST:
        return "kng"
    has_obis = False
    nested = False
    for item in body:
        if _is_obis(item):
            has_obis = True
        elif isinstance(item, list) and item and _is_obis(item[0]):
            has_obis = nested = True
    if not has_obis:
        if len(body) >= 10 and _ints(body, 0, 10):
            return "burgenland"
        raise LayoutError("unknown meter data format")
    if nested:
        return "tinetz"
    for item in body:
        if _is_scaler_unit(item):
            return "netznoe"
    return "obis-pairs"


def apply(body, reading, layout="auto"):
    """Fill ``reading.values`` (and meter time if the header had none) from ``body``.

    :param layout: "auto" or one of ``LAYOUTS``
    :returns: the layout name used
    :raises LayoutError: if the body matches no known layout
    :raises ParseError: if a date-time inside the body is invalid
    """
    name = detect(body) if layout == "auto" else layout
    if name == "burgenland":
        _burgenland(body, reading)
    elif name == "kng":
        _kng(body, reading)
    elif name in ("netznoe", "tinetz", "obis-pairs"):
        entries = _obis_walk(body, reading)[0]
        if not entries:
            raise LayoutError("no OBIS values in telegram")
    else:
        raise ParseError("unknown layout setting")
    if not reading.values:
        raise LayoutError("telegram carried no values")
    return name
