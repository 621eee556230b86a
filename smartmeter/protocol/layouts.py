# SPDX-License-Identifier: MIT
"""Map a data-notification body onto OBIS-keyed values, whatever shape the meter sends.

Austrian meters use these body shapes (see docs): OBIS codes with scaler/unit, flat or nested
(Netz NOE, TINETZ/Salzburg/VKW/IKB, L+G E450 block transfer without scalers); positional lists
with no OBIS codes at all (Netz Burgenland E450, KNG AM550, the Wiener Netze 8-value list of
AM550/E450/IM350); and the self-describing E450 list (Stadtwerke Klagenfurt: the capture objects,
then the values in their order). The shape is detected from the body (never from the system
title); ``METER_LAYOUT`` may force one. Each value is scaled with the frame's own scaler.

Two more formats are not A-XDR bodies and are decoded elsewhere, but their names are layouts
too (``LAYOUTS`` is the one list of names the settings, the CLI and the simulator use): ``amis``
(Netz OÖ, :mod:`~smartmeter.protocol.oms`) and ``t210dr`` (Energienetze Steiermark DSMR text,
:mod:`~smartmeter.protocol.dsmr`).
"""

from . import reading as r
from .axdr import parse_datetime
from .errors import LayoutError, ParseError

LAYOUTS = (
    "netznoe",
    "tinetz",
    "obis-pairs",
    "burgenland",
    "kng",
    "wienernetze",
    "e450-list",
    "amis",
    "t210dr",
)
NOT_AXDR = ("amis", "t210dr")  # layouts of telegrams that are not DLMS data-notifications

# Units that stay integers (energy, power): W, VA, var, Wh, VAh, varh
_INT_UNITS = (27, 28, 29, 30, 31, 32)
# OBIS C values that are energy/power when the frame carries no unit (pairs without scalers)
_INT_C = (1, 2, 3, 4, 9, 10, 15, 16)

_CLOCK = b"\x00\x00\x01\x00\x00\xff"
_KNG_LIST = b"\x00\x06\x19\x09\x00\xff"  # 0-6:25.9.0, the AM550 list id
_PUSH_SETUP = 40  # COSEM class of the push setup (its capture list opens a self-describing body)

_NAMES = {}  # bytes(6) -> interned OBIS text, filled lazily


def obis_text(code):
    """``b'\\x01\\x00\\x01\\x08\\x00\\xff'`` -> ``"1-0:1.8.0"`` (interned for known codes)."""
    name = _NAMES.get(code)
    if name is None:
        name = "%d-%d:%d.%d.%d" % (code[0], code[1], code[2], code[3], code[4])
        if len(_NAMES) < 64:  # bounded: a hostile frame cannot grow the table
            _NAMES[code] = name
    return name


TEXT = -1  # plan kinds besides an OBIS C field (int >= 0) or None (unit decides)
STR = -2  # a value the fast path does not handle
TIME = -3


def scale(value, scaler, unit, c_field=None):
    """Apply ``value * 10**scaler``: integers for energy/power units, floats otherwise.

    :param c_field: the OBIS C field, which decides int/float when the frame has no unit
    """
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


_TEXTS = {}  # raw -> text: the meter number repeats in every telegram


def _text(raw):
    """Octet-string -> printable text (hex when it is not text)."""
    raw = bytes(raw)
    text = _TEXTS.get(raw)
    if text is not None:
        return text
    try:
        text = raw.decode()
    except UnicodeError:
        text = raw.hex().upper()
    # Keep printable ASCII only: some meters pad with NULs
    text = "".join(ch for ch in text if " " <= ch <= "~").strip()
    if len(_TEXTS) < 8:  # bounded: a hostile stream cannot grow it
        _TEXTS[raw] = text
    return text


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


def _set_time(reading, raw, plan=None, loc=None):
    if reading.meter_time is None and isinstance(raw, bytes) and len(raw) == 12:
        reading.meter_time, reading.utc_offset, reading.dst = parse_datetime(raw)
        if plan is not None:
            plan.append((loc, None, TIME, 0, None))


def _put(reading, name, value, kind, scaler, unit, plan, loc):
    """Store a value and, when planning, how to get it again from the same leaf."""
    if kind == TEXT:
        reading.values[name] = _text(value)
    else:
        reading.values[name] = scale(value, scaler, unit, kind)
    if plan is not None:
        plan.append((loc, name, kind, scaler, unit))


def _store(reading, code, value, scaler_unit, plan=None, loc=None):
    """Store one OBIS entry: text for ids, scaled numbers otherwise."""
    if code == _CLOCK:
        _set_time(reading, value, plan, loc)
        return
    name = obis_text(code)
    if isinstance(value, bytes):
        if code[0] == 0 and code[2] in (96, 42):  # meter number, logical device name
            _put(reading, name, value, TEXT, 0, None, plan, loc)
        return  # other octet-strings (dates, list ids) carry no reading
    if isinstance(value, (str, float)):
        reading.values[name] = value
        if plan is not None:
            plan.append((None, name, STR, 0, None))  # rare types: no fast path for this meter
        return
    if value is None or isinstance(value, (list, bool)):
        return
    if scaler_unit is None:
        _put(reading, name, value, code[2], 0, None, plan, loc)
    else:
        _put(reading, name, value, None, scaler_unit[0], scaler_unit[1], plan, loc)


def _obis_walk(body, reading, shape=None, plan=None):
    """Walk a body of OBIS entries, flat (obis, value, [scaler, unit]) or nested structures.

    :param shape: the body's leaf locations (``Parser.locate``) when building a plan
    :returns: the number of OBIS entries found
    """
    entries = 0
    i = 0
    n = len(body)
    loc = None
    while i < n:
        item = body[i]
        if _is_obis(item) and i + 1 < n:
            su = body[i + 2] if i + 2 < n and _is_scaler_unit(body[i + 2]) else None
            if shape is not None:
                loc = shape[i + 1]
            _store(reading, item, body[i + 1], su, plan, loc)
            entries += 1
            i += 3 if su is not None else 2
            continue
        if shape is not None:
            loc = shape[i]
        if isinstance(item, list) and len(item) in (2, 3) and _is_obis(item[0]):
            su = item[2] if len(item) == 3 and _is_scaler_unit(item[2]) else None
            _store(reading, item[0], item[1], su, plan, loc[1] if loc is not None else None)
            entries += 1
        elif isinstance(item, bytes) and len(item) == 12 and i == 0:
            _set_time(reading, item, plan, loc)  # Netz NOE: a bare date-time opens the body
        elif isinstance(item, bytes) and i == n - 1 and 0 < len(item) <= 32:
            # Netz NOE: the meter number comes last, without an OBIS code
            _put(reading, r.METER_NUMBER, item, TEXT, 0, None, plan, loc)
        i += 1
    return entries


def _ints(body, start, stop):
    for k in range(start, stop):
        v = body[k]
        if not isinstance(v, int) or isinstance(v, bool):
            return False
    return True


# Positional lists: (index, OBIS, scaler, unit)
_BURGENLAND = (
    (0, r.U_L1, 0, 35),
    (1, r.U_L2, 0, 35),
    (2, r.U_L3, 0, 35),
    (3, r.I_L1, -2, 33),
    (4, r.I_L2, -2, 33),
    (5, r.I_L3, -2, 33),
    (6, r.P_PLUS, 0, 27),
    (7, r.P_MINUS, 0, 27),
    (8, r.A_PLUS, 0, 30),
    (9, r.A_MINUS, 0, 30),
)
_KNG = (
    (4, r.A_PLUS, 0, 30),
    (5, r.A_MINUS, 0, 30),
    (6, r.R_PLUS, 0, 32),
    (7, r.R_MINUS, 0, 32),
    (8, r.P_PLUS, 0, 27),
    (9, r.P_MINUS, 0, 27),
)


def _positional(body, reading, table, id_index, shape, plan):
    for k, key, scaler, unit in table:
        _put(reading, key, body[k], None, scaler, unit, plan, shape[k] if shape else None)
    meter_id = body[id_index]
    if isinstance(meter_id, bytes) and 0 < len(meter_id) <= 32:
        loc = shape[id_index] if shape else None
        _put(reading, r.METER_NUMBER, meter_id, TEXT, 0, None, plan, loc)


def _burgenland(body, reading, shape=None, plan=None):
    # U1 U2 U3 (V), I1 I2 I3 (0.01 A), P+ P- (W), A+ A- (Wh), 3 unnamed uint16, meter id
    if len(body) < 10 or not _ints(body, 0, 10):
        raise LayoutError("body does not match the Netz Burgenland list")
    _positional(body, reading, _BURGENLAND, len(body) - 1, shape, plan)


def _kng(body, reading, shape=None, plan=None):
    # list id, meter id, time (hh mm ss hs), date (yyyy mm dd wd), A+ A- R+ R- (Wh/varh), P+ P- (W)
    if len(body) < 10 or not _ints(body, 4, 10):
        raise LayoutError("body does not match the KNG AM550 list")
    _positional(body, reading, _KNG, 1, shape, plan)
    if reading.meter_time is None:
        t, d = body[2], body[3]
        if isinstance(t, bytes) and isinstance(d, bytes) and len(t) >= 3 and len(d) >= 4:
            raw = bytes(d[:4]) + bytes(t[:3]) + b"\x00\x80\x00\xff"
            reading.meter_time, reading.utc_offset, reading.dst = parse_datetime(raw)
            if plan is not None:
                plan.append((None, None, TIME, 0, None))  # two leaves: no fast path


# Wiener Netze: +A -A (Wh), +R -R (varh), +P -P (W), +Q -Q (var), after the date-time
_WIENERNETZE = (
    (0, r.A_PLUS, 0, 30),
    (1, r.A_MINUS, 0, 30),
    (2, r.R_PLUS, 0, 32),
    (3, r.R_MINUS, 0, 32),
    (4, r.P_PLUS, 0, 27),
    (5, r.P_MINUS, 0, 27),
    (6, r.Q_PLUS, 0, 29),
    (7, r.Q_MINUS, 0, 29),
)


def _wn_start(body):
    """Index of the date-time in a Wiener Netze list (0: AM550/E450, 1: IM350), or -1.

    Shape: [meter id octet-string (IM350 only)], 12-byte date-time, then 8 integers.
    """
    n = len(body)
    if n == 9:
        k = 0
    elif n == 10:
        ident = body[0]
        if not isinstance(ident, bytes) or not 0 < len(ident) <= 32:
            return -1
        k = 1
    else:
        return -1
    dt = body[k]
    if not isinstance(dt, bytes) or len(dt) != 12 or not _ints(body, k + 1, n):
        return -1
    return k


def _wienernetze(body, reading, shape=None, plan=None):
    k = _wn_start(body) if isinstance(body, list) else -1
    if k < 0:
        raise LayoutError("body does not match the Wiener Netze list")
    for i, key, scaler, unit in _WIENERNETZE:
        loc = shape[k + 1 + i] if shape else None
        _put(reading, key, body[k + 1 + i], None, scaler, unit, plan, loc)
    if k:
        _put(reading, r.METER_NUMBER, body[0], TEXT, 0, None, plan, shape[0] if shape else None)
    _set_time(reading, body[k], plan, shape[k] if shape else None)


def _captures(body):
    """The capture-object list opening a self-describing body, or None.

    Each capture object is ``(class-id, OBIS, attribute, data-index)``; the values follow in
    the same order, the first being the capture list itself (attribute 2 of the push setup).
    """
    if not body or not isinstance(body[0], list) or len(body[0]) != len(body):
        return None
    for obj in body[0]:
        if not (
            isinstance(obj, list)
            and len(obj) == 4
            and isinstance(obj[0], int)
            and _is_obis(obj[1])
            and isinstance(obj[2], int)
        ):
            return None
    return body[0]


def _e450_list(body, reading, shape=None, plan=None):
    caps = _captures(body) if isinstance(body, list) else None
    if caps is None:
        raise LayoutError("body does not match the self-describing E450 list")
    entries = 0
    for k in range(1, len(body)):
        cls, code, attr = caps[k][0], caps[k][1], caps[k][2]
        if cls == _PUSH_SETUP or attr != 2:
            continue  # the push setup's own name/list: no reading
        # Registers come without scaler or unit: energy/power as integers by OBIS C field,
        # voltage and current exactly as the meter sends them (their scale is not stated).
        _store(reading, code, body[k], None, plan, shape[k] if shape else None)
        entries += 1
    if not entries:
        raise LayoutError("no values in the self-describing list")


def detect(body):
    """Name the layout of a data-notification body (a list), or raise LayoutError."""
    if not isinstance(body, list) or not body:
        raise LayoutError("telegram body is not a list of values")
    if body[0] == _KNG_LIST:
        return "kng"
    if _captures(body) is not None:
        return "e450-list"
    has_obis = False
    nested = False
    last = len(body) - 1
    for k, item in enumerate(body):
        if _is_obis(item) and k < last:  # an OBIS code is followed by its value
            has_obis = True
        elif isinstance(item, list) and item and _is_obis(item[0]):
            has_obis = nested = True
    if not has_obis:
        if _wn_start(body) >= 0:
            return "wienernetze"
        if len(body) >= 10 and _ints(body, 0, 10):
            return "burgenland"
        raise LayoutError("unknown meter data format")
    if nested:
        return "tinetz"
    for item in body:
        if _is_scaler_unit(item):
            return "netznoe"
    return "obis-pairs"


def apply(body, reading, layout="auto", shape=None, plan=None):
    """Fill ``reading.values`` (and meter time if the header had none) from ``body``.

    :param layout: "auto" or one of ``LAYOUTS``
    :param shape: leaf locations of ``body`` (``axdr.Parser.locate``), to build ``plan``
    :param plan: a list that receives ``(leaf, key, kind, scaler, unit)`` per stored value
    :returns: the layout name used
    :raises LayoutError: if the body matches no known layout
    :raises ParseError: if a date-time inside the body is invalid
    """
    name = detect(body) if layout == "auto" else layout
    if name == "burgenland":
        _burgenland(body, reading, shape, plan)
    elif name == "kng":
        _kng(body, reading, shape, plan)
    elif name == "wienernetze":
        _wienernetze(body, reading, shape, plan)
    elif name == "e450-list":
        _e450_list(body, reading, shape, plan)
    elif name in ("netznoe", "tinetz", "obis-pairs"):
        entries = _obis_walk(body, reading, shape, plan)
        if not entries:
            raise LayoutError("no OBIS values in telegram")
    elif name in NOT_AXDR:
        raise LayoutError("METER_LAYOUT %s does not match this DLMS telegram" % name)
    else:
        raise ParseError("unknown layout setting")
    if not reading.values:
        raise LayoutError("telegram carried no values")
    return name
