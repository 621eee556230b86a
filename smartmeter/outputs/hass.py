# SPDX-License-Identifier: MIT
"""Home Assistant entities for the MQTT sink: which value becomes which sensor, and discovery.

Pure (no network): :func:`entity` maps a reading key to its entity tuple, :func:`value_text`
makes the JSON number of a state message, :func:`device_info`, :func:`config_topic` and
:func:`config_payload` build the retained discovery configs. Used by :mod:`smartmeter.outputs.mqtt`.
"""

import math

from .. import __version__
from ..protocol.reading import APPARENT_POWER, DERIVED_PF, HUMIDITY, RSSI, TEMPERATURE
from ..timeutil import iso_local

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Entity tuple fields (OID and KIND are public: the sink reads them)
OID = const(0)
_NAME = const(1)
_CLASS = const(2)
_UNIT = const(3)
_STATE_CLASS = const(4)
KIND = const(5)
_PRECISION = const(6)
_CATEGORY = const(7)
_K_MILLI = const(0)  # integer Wh/varh published as kWh/kvarh "%d.%03d"
_K_NUM = const(1)
_K_TIME = const(2)  # a quarter hour number (UTC epoch // 900) published as local ISO 8601 time

_MAKERS = {
    "KFM": "Kaifa",
    "LGZ": "Landis+Gyr",
    "ISK": "Iskraemeco",
    "SAG": "Sagemcom",
    "EMH": "EMH metering",
    "ELS": "Elster",
}
_ENERGY = {
    1: ("energy_import", "Energy import", "energy", "kWh"),
    2: ("energy_export", "Energy export", "energy", "kWh"),
    3: ("reactive_energy_import", "Reactive energy import", "reactive_energy", "kvarh"),
    4: ("reactive_energy_export", "Reactive energy export", "reactive_energy", "kvarh"),
}
_INSTANT = {
    1: ("power_import", "Power import", "power", "W", 0),
    2: ("power_export", "Power export", "power", "W", 0),
    3: ("reactive_power_import", "Reactive power import", "reactive_power", "var", 0),
    4: ("reactive_power_export", "Reactive power export", "reactive_power", "var", 0),
    13: ("power_factor", "Power factor", "power_factor", None, 3),
    14: ("frequency", "Frequency", "frequency", "Hz", 2),
}
for _c, _ph in ((21, 1), (41, 2), (61, 3)):
    _INSTANT[_c] = ("power_import_l%d" % _ph, "Power import L%d" % _ph, "power", "W", 0)
    _INSTANT[_c + 1] = ("power_export_l%d" % _ph, "Power export L%d" % _ph, "power", "W", 0)
    _INSTANT[_c + 10] = ("current_l%d" % _ph, "Current L%d" % _ph, "current", "A", 2)
    _INSTANT[_c + 11] = ("voltage_l%d" % _ph, "Voltage L%d" % _ph, "voltage", "V", 1)
_M = "measurement"
_DIAG = "diagnostic"


def _measure(oid, name, cls, unit, precision, category=None):
    return (oid, name, cls, unit, _M, _K_NUM, precision, category)


_OTHER = {
    "_net": _measure("power", "Power", "power", "W", 0),  # P+ - P-: negative while exporting
    APPARENT_POWER: _measure("apparent_power", "Apparent power", "apparent_power", "VA", 0),
    DERIVED_PF: _measure("power_factor_calc", "Power factor (calculated)", "power_factor", None, 2),
    TEMPERATURE: _measure("temperature", "Board temperature", "temperature", "°C", 1, _DIAG),
    HUMIDITY: _measure("humidity", "Board humidity", "humidity", "%", 0, _DIAG),
    RSSI: _measure("wifi_rssi", "WiFi signal", "signal_strength", "dBm", 0, _DIAG),
    # from the usage summary (smartmeter/datalog/usage.py): Wh -> kWh, milli-cent -> ct/kWh
    "today_import": (
        "energy_today_import",
        "Energy import today",
        "energy",
        "kWh",
        "total_increasing",
        _K_MILLI,
        3,
        None,
    ),
    "today_export": (
        "energy_today_export",
        "Energy export today",
        "energy",
        "kWh",
        "total_increasing",
        _K_MILLI,
        3,
        None,
    ),
    "price_now": ("price", "Electricity price now", None, "ct/kWh", _M, _K_MILLI, 2, None),
}


def _when(oid, name):
    """A timestamp entity (published as a local ISO time)."""
    return (oid, name, "timestamp", None, None, _K_TIME, None, None)


def _kw(oid, name):
    """A demand in W published as kW."""
    return (oid, name, "power", "kW", _M, _K_MILLI, 2, None)


# the cheapest 1, 2, 3 hours ahead (datalog/cheapest.py): when each starts
for _h in (1, 2, 3):
    _OTHER["cheapest_%dh" % _h] = _when("cheapest_%dh_start" % _h, "Cheapest %d h start" % _h)
# the month's quarter-hour demand peaks (datalog/peaks.py), and when
for _n, _suffix, _label in ((1, "", ""), (2, "_2", " 2nd"), (3, "_3", " 3rd")):
    _OTHER["peak_%d" % _n] = _kw("peak_month" + _suffix, "Peak demand this month" + _label)
    _OTHER["peak_%d_at" % _n] = _when(
        "peak_month%s_time" % _suffix, "Peak demand this month%s at" % _label
    )
# the open quarter hour: its running average and where it is heading
_OTHER["quarter_avg"] = _kw("demand_quarter", "Demand this quarter hour")
_OTHER["quarter_projected"] = _kw("demand_quarter_projected", "Demand this quarter hour projected")


def entity(key):
    """The entity tuple for a ``values``/``derived``/extras key, or None for text or unknown keys.

    :returns: (object_id, name, device_class, unit, state_class, kind, precision, category)
    """
    if key in _OTHER:
        return _OTHER[key]
    if not key.startswith("1-0:"):
        return None  # meter number, device name, clock...
    try:
        c, d, e = [int(p) for p in key[4:].split(".")]
    except ValueError:
        return None
    if d == 8 and c in _ENERGY:
        oid, name, cls, unit = _ENERGY[c]
        if e:
            oid += "_t%d" % e
            name += " T%d" % e
        return (oid, name, cls, unit, "total_increasing", _K_MILLI, 3, None)
    if d == 7 and e == 0 and c in _INSTANT:
        oid, name, cls, unit, prec = _INSTANT[c]
        return (oid, name, cls, unit, _M, _K_NUM, prec, None)
    oid = "obis_1_0_%d_%d_%d" % (c, d, e)  # a number we have no meaning for: shown, no statistics
    return (oid, "OBIS 1-0:%d.%d.%d" % (c, d, e), None, None, None, _K_NUM, None, None)


def known_object_ids():
    """Every object id :func:`entity` gives for a known key (tariffs 1-4), one at a time.

    The MQTT sink clears the retained discovery configs of those this meter does not send (an
    old meter, an older firmware, a sensor since removed); our client publishes only, so it
    cannot read back what is retained - it clears what it could have announced.
    """
    for c in _ENERGY:
        oid = _ENERGY[c][0]
        yield oid
        for e in range(1, 5):
            yield oid + "_t%d" % e
    for c in _INSTANT:
        yield _INSTANT[c][0]
    for key in _OTHER:
        yield _OTHER[key][OID]


def value_text(value, kind):
    """JSON number text: integer Wh as kWh with 3 decimals; floats without float artefacts;
    a quarter hour number as a quoted local ISO 8601 time (timestamp sensors)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if kind == _K_TIME:
        return '"%s"' % iso_local(int(value) * 900) if isinstance(value, int) else None
    if kind == _K_MILLI:
        value = int(value)
        sign = "-" if value < 0 else ""
        whole, milli = divmod(abs(value), 1000)
        return "%s%d.%03d" % (sign, whole, milli)
    if isinstance(value, int):
        return "%d" % value
    if math.isnan(value) or math.isinf(value):
        return None  # NaN/inf are not JSON
    text = "%.4f" % value
    text = text.rstrip("0")
    return text[:-1] if text.endswith(".") else text


def device_info(node, meter, maker, model, layout):
    """The Home Assistant ``device`` block of a meter.

    :param node: ``"smartmeter_<meter>"``; ``meter`` the cleaned meter number
    :param maker: the 3-letter maker id (or None); ``model`` the device name the meter sends
    """
    return {
        "identifiers": [node],
        "name": "Smart meter " + meter,
        "manufacturer": _MAKERS.get(maker, maker or "unknown"),
        "model": model if isinstance(model, str) else "%s meter" % (layout or "smart"),
        "serial_number": meter,
        "sw_version": __version__,
    }


def config_topic(prefix, node, ent):
    """The retained discovery topic of entity ``ent``."""
    return "%s/sensor/%s/%s/config" % (prefix, node, ent[OID])


def config_payload(ent, node, base, device):
    """The discovery config (JSON text) of one entity, built when sent: one small dict at a time."""
    import json

    oid = ent[OID]
    cfg = {
        "name": ent[_NAME],
        "unique_id": node + "_" + oid,
        "state_topic": base + "/state",
        # A state message without this key (a value the meter left out, a sensor that failed)
        # renders None, which Home Assistant's MQTT sensor takes as "unknown" - instead of a
        # template warning per message and the last value shown as if it were current.
        "value_template": "{{ value_json.%s if '%s' in value_json else None }}" % (oid, oid),
        "availability_topic": base + "/status",
        "device": device,
        "origin": {"name": "smartmeter", "sw_version": __version__},
    }
    for field, index in (
        ("device_class", _CLASS),
        ("unit_of_measurement", _UNIT),
        ("state_class", _STATE_CLASS),
        ("entity_category", _CATEGORY),
        ("suggested_display_precision", _PRECISION),
    ):
        if ent[index] is not None:
            cfg[field] = ent[index]
    return json.dumps(cfg)
