# SPDX-License-Identifier: MIT
"""JSON for the web API (``/api/now``, ``/api/status``, ``/api/history``, ``/api/settings``)
and the settings form that writes the SD override file.

Nothing here returns a secret: settings come from ``config.public()`` (secrets as true/false),
the status has no passwords (the generated web password and the AP password are shown on the
display only), and form errors name the key, never the value.
"""

import json

from .. import config as config_mod
from ..state import problem_text

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_HISTORY_MAX = const(1440)
_POINTS_PER_CHUNK = const(48)

# What the settings page may change. Secrets are write-only: an empty field keeps the value.
EDITABLE = (
    "CIRCUITPY_WIFI_SSID",
    "CIRCUITPY_WIFI_PASSWORD",
    "METER_KEY",
    "METER_AUTH_KEY",
    "GRAPHITE_HOST",
    "GRAPHITE_PORT",
    "GRAPHITE_PREFIX",
    "GRAPHITE_INTERVAL_S",
    "MQTT_HOST",
    "MQTT_PORT",
    "MQTT_USER",
    "MQTT_PASSWORD",
    "MQTT_TLS",
    "MQTT_BASE_TOPIC",
    "MQTT_INTERVAL_S",
    "WEB_USER",
    "WEB_PASSWORD",
    "UI_LANGUAGE",
    "HOSTNAME",
    "PRICE_CT_KWH",
    "FEED_IN_CT_KWH",
    "BASE_FEE_EUR_MONTH",
    "GRID_FEE_CT_KWH",
    "GRID_FEE_WINDOWS",  # pasted as text, e.g. "4-9 Mo-So 10-16 -20%" (checked like the file)
)


def now_json(state, ticks_ms=None, ticks_diff=None):
    """The latest reading as JSON text (``{"reading": null}`` before the first telegram)."""
    r = state.latest
    out = {"reading": None}
    if r is not None:
        out["reading"] = r.as_dict()
        out["epoch"] = state.latest_epoch
        if ticks_ms is not None and state.latest_ticks is not None:
            out["age_s"] = ticks_diff(ticks_ms, state.latest_ticks) // 1000
    out["temperature"] = state.temperature
    out["humidity"] = state.humidity
    return json.dumps(out)


def status_json(state, language="en", ticks_ms=None, ticks_diff=None):
    """Every counter, SD, network, uptime, version and the problems in words."""
    problems = state.problems(ticks_ms, ticks_diff)
    sd_used = None
    if state.sd_total is not None and state.sd_free is not None:
        sd_used = state.sd_total - state.sd_free
    out = {
        "version": state.version,
        "uptime_s": state.uptime_s,
        "reset_reason": state.reset_reason,
        "problems": [{"code": p, "text": problem_text(p, language)} for p in problems],
        "last_errors": dict(state.last_errors),
        "config_problems": list(state.config_problems),
        "counters": {name: getattr(state.counters, name) for name in state.counters.NAMES},
        "sd": {
            "state": state.sd_state,
            "free": state.sd_free,
            "used": sd_used,
            "total": state.sd_total,
            "uploads_deleted": state.uploads_deleted,
            "upload_deleted": state.upload_deleted,
        },
        "network": {
            "connected": state.wifi_connected,
            "ssid": state.wifi_ssid,
            "ip": state.ip,
            "rssi": state.wifi_rssi,
            "hostname": state.hostname,
            "ap_mode": state.ap_mode,
            "ap_ssid": state.ap_ssid,
        },
        "sinks": {name: sink_dict(s) for name, s in state.sinks.items()},
        "sensor": {
            "state": state.sensor_state,
            "temperature": state.temperature,
            "humidity": state.humidity,
        },
        "line": {
            "setting": state.line,
            "state": state.line_state,
            "found_after_s": None if state.line_found_ms is None else state.line_found_ms // 1000,
            "tx": state.meter_tx,
            "link_frames": state.link_frames,
        },
        "clock_set": state.clock_set,
        "key_set": state.key_set,
    }
    for alias in ("graphite", "mqtt"):  # before "sinks" (0.1): kept for one release
        sink = state.sinks.get(alias)
        out[alias] = sink.state if sink is not None else "disabled"
    return json.dumps(out)


def sink_dict(sink):
    """An output's ``state.SinkStatus`` as JSON-ready dict (here: the web page is its reader)."""
    return {
        "state": sink.state,
        "error": sink.error,
        "sent": sink.sent,
        "failed": sink.failed,
        "queued": sink.queued,
        "dropped": sink.dropped,
    }


def history_items(history, since_minute=None):
    """Yield (epoch_minute, watts) of a ``state.History`` oldest first, optionally only from
    ``since_minute`` on (the day curve's reader is the web page: its code lives here)."""
    size = history.size
    count = history._count  # the ring's one reader
    if not count:
        return
    start = (history._head - count + 1) % size
    minutes, watts = history._minute, history._watts
    for k in range(count):
        i = (start + k) % size
        m = minutes[i]
        if since_minute is None or m >= since_minute:
            yield m, watts[i]


def history_chunks(state, minutes, now_epoch=None):
    """``{"minutes":N,"points":[[epoch_s,watts],...]}`` in pieces, oldest point first.

    The window ends at ``now_epoch`` (default: the latest reading's time).
    """
    minutes = max(1, min(_HISTORY_MAX, minutes))
    ref = now_epoch if now_epoch is not None else state.latest_epoch
    since = None
    if ref is not None:
        since = ref // 60 - minutes + 1
    yield '{"minutes":%d,"points":[' % minutes
    first = True
    piece = []
    if ref is not None or len(state.history):
        for minute, watts in history_items(state.history, since):
            piece.append(("[%d,%d]" if first else ",[%d,%d]") % (minute * 60, watts))
            first = False
            if len(piece) >= _POINTS_PER_CHUNK:
                yield "".join(piece)
                piece = []
    if piece:
        yield "".join(piece)
    yield "]}"


def settings_json(config):
    """The settings page's data: editable keys, current values, secrets as ``true``/``false``."""
    public = config_mod.public(config)
    values = {}
    for name in EDITABLE:
        value = public.get(name)
        if config_mod.SCHEMA[name][0] == "milli":  # thousandths -> "24.95" as typed
            value = config_mod.format_milli(value)
        values[name] = value
    out = {
        "editable": list(EDITABLE),
        "secrets": [n for n in EDITABLE if n in config_mod.SECRETS],
        "values": values,
        "choices": {"UI_LANGUAGE": list(config_mod.SCHEMA["UI_LANGUAGE"][2])},
    }
    return json.dumps(out)


def apply_settings(form, existing):
    """Merge a submitted form into the override values and validate them.

    :param form: dict of submitted fields (str)
    :param existing: dict of the override file's current values
    :returns: ``(merged, changed, problems)``; ``problems`` name keys only
    """
    merged = dict(existing)
    changed = []
    for name in EDITABLE:
        if name not in form:
            continue
        kind = config_mod.SCHEMA[name][0]
        value = form[name].strip()
        if kind in ("secret", "key") and value == "":
            continue  # write-only: empty keeps what is set
        if kind in ("int", "milli") and value == "":
            continue
        if kind == "bool":
            value = value.lower() in ("1", "true", "on", "yes")
        merged[name] = value
        changed.append(name)
    if "MQTT_TLS" in form or "MQTT_TLS_present" in form:
        if "MQTT_TLS" not in form:
            merged["MQTT_TLS"] = False
            changed.append("MQTT_TLS")
    check = config_mod.load(lambda _name: None, merged)
    problems = [p for p in check.problems if p.split(" ", 1)[0] in merged]
    if not problems:
        for name in changed:  # store ints as ints so the file reads naturally
            if config_mod.SCHEMA[name][0] == "int":
                merged[name] = getattr(check, name)
    return merged, changed, problems
