# SPDX-License-Identifier: MIT
"""Settings: read once, validated, typed; every problem names the key and never echoes a secret.

Sources, later ones win: ``settings.toml`` (through ``os.getenv`` on the device, which returns
str from CircuitPython 10.2 on - every value is converted here), then the override file on the SD
card that the web settings page writes (CIRCUITPY is read-only to code while USB is connected;
``smartmeter/overrides.py`` reads and writes it at ``OVERRIDE_DIR``, a folder the web file routes
can never reach, whatever LOG_DIR is).
A bad value keeps the default and adds a line to ``Config.problems``; the firmware runs on in a
degraded mode that shows the problem instead of crashing into the REPL.

Every text value is checked for where it is used: no control characters anywhere (they could
break the settings file, a Graphite line or an HTTP header); HOSTNAME 1-26 letters, digits or
``-`` (the setup access point ``<HOSTNAME>-setup`` must fit WiFi's 32 bytes); MQTT topics without
``#``/``+``; the Graphite prefix letters, digits, ``_ - .``; WEB_PASSWORD empty (generated) or
8-64 characters; AP_PASSWORD empty or 8-63 (WPA2); WEB_USER without ``:`` (Basic auth).
"""

from . import configvalues
from .configvalues import PRIVATE_DIR, Config
from .protocol.crypto import parse_key
from .protocol.errors import KeyFormatError
from .protocol.layouts import LAYOUTS

# name: (kind, default, extra)  kind: str | int | milli | bool | choice | key | secret | pin
# extra: (min, max) for int and milli, tuple of choices for choice. A "milli" setting is a decimal
# number with up to 3 decimals ("24.95", dot or comma) kept as an integer in thousandths (24950):
# prices stay exact without floats (single precision on the device).
SCHEMA = {
    "METER_KEY": ("key", None, None),
    "METER_AUTH_KEY": ("key", None, None),
    # auto = search the line settings (smartmeter/linesearch.py); the others fix the line
    "METER_TRANSPORT": ("choice", "auto", ("auto", "mbus", "hdlc", "amis", "raw")),
    "METER_BAUD": ("int", 0, (0, 921600)),  # 0 = by transport: 2400 M-Bus, 9600 HDLC
    "METER_PARITY": ("choice", "auto", ("auto", "even", "none", "odd")),
    "METER_LAYOUT": ("choice", "auto", ("auto",) + LAYOUTS),
    "ENERGY_OFFSET_WH": ("int", 0, (0, 10**12)),
    "LOG_DIR": ("str", "/sd/logs", None),
    "LOG_MIN_FREE_MB": ("int", 100, (1, 1_000_000)),
    "CSV_DIALECT": ("choice", "excel-de", ("excel-de", "international")),
    "WEB_PORT": ("int", 8080, (1, 65535)),
    "WEB_USER": ("str", "admin", None),
    "WEB_PASSWORD": ("secret", "", None),
    "GRAPHITE_HOST": ("str", "", None),
    "GRAPHITE_PORT": ("int", 2003, (1, 65535)),
    "GRAPHITE_PREFIX": ("str", "smartmeter", None),
    "GRAPHITE_INTERVAL_S": ("int", 0, (0, 86400)),
    "MQTT_HOST": ("str", "", None),
    "MQTT_PORT": ("int", 1883, (1, 65535)),
    "MQTT_USER": ("str", "", None),
    "MQTT_PASSWORD": ("secret", "", None),
    "MQTT_TLS": ("bool", False, None),
    "MQTT_BASE_TOPIC": ("str", "smartmeter", None),
    "MQTT_DISCOVERY_PREFIX": ("str", "homeassistant", None),
    "MQTT_INTERVAL_S": ("int", 0, (0, 86400)),
    "INFLUX_URL": ("str", "", None),
    "INFLUX_DB": ("str", "smartmeter", None),
    "INFLUX_ORG": ("str", "", None),
    "INFLUX_TOKEN": ("secret", "", None),
    "INFLUX_MEASUREMENT": ("str", "smartmeter", None),
    "INFLUX_INTERVAL_S": ("int", 0, (0, 86400)),
    # Usage and cost (smartmeter/datalog/usage.py, smartmeter/outputs/prices.py)
    "PRICE_CT_KWH": ("milli", 0, (0, 1_000_000)),  # gross ct/kWh, 0 = unknown
    "FEED_IN_CT_KWH": ("milli", 0, (0, 1_000_000)),
    "FEED_IN_DYNAMIC": ("bool", False, None),  # feed-in at the market price minus the fee
    "FEED_IN_FEE_CT_KWH": ("milli", 0, (-1_000_000, 1_000_000)),
    "BASE_FEE_EUR_MONTH": ("milli", 0, (0, 1_000_000)),
    "PRICE_DYNAMIC": ("bool", False, None),
    "PRICE_API_URL": ("str", "https://api.awattar.at/v1/marketdata", None),
    "PRICE_MARKUP_CT_KWH": ("milli", 0, (-1_000_000, 1_000_000)),
    "PRICE_VAT_PERCENT": ("milli", 20_000, (0, 100_000)),
    # grid fee per kWh (gross) and its time-of-day windows (smartmeter/datalog/gridfee.py)
    "GRID_FEE_CT_KWH": ("milli", 0, (0, 1_000_000)),
    "GRID_FEE_WINDOWS": ("str", "", None),
    "DISPLAY_TIMEOUT_S": ("int", 120, (0, 86400)),  # 0 = never off
    "UI_LANGUAGE": ("choice", "de", ("de", "en")),
    "NTP_SERVER": ("str", "at.pool.ntp.org", None),
    "HOSTNAME": ("str", "smartmeter", None),
    "WATCHDOG_S": ("int", 60, (0, 3600)),  # 0 = off
    "CIRCUITPY_WIFI_SSID": ("str", "", None),
    "CIRCUITPY_WIFI_PASSWORD": ("secret", "", None),
    "AP_PASSWORD": ("secret", "", None),
    "SD_MODE": ("choice", "sdio", ("sdio", "spi", "none")),
    # Pins (board names). Defaults: ESP32-S3 DevKitC-1 wiring from the README.
    "PIN_METER_RX": ("pin", "IO18", None),
    "PIN_METER_TX": ("pin", "", None),
    "PIN_SD_CLK": ("pin", "IO39", None),
    "PIN_SD_CMD": ("pin", "IO38", None),
    "PIN_SD_D0": ("pin", "IO40", None),
    "PIN_SD_D1": ("pin", "IO41", None),
    "PIN_SD_D2": ("pin", "IO42", None),
    "PIN_SD_D3": ("pin", "IO47", None),
    "PIN_TFT_SCK": ("pin", "IO12", None),
    "PIN_TFT_MOSI": ("pin", "IO11", None),
    "PIN_TFT_CS": ("pin", "IO10", None),
    "PIN_TFT_DC": ("pin", "IO9", None),
    "PIN_TFT_RST": ("pin", "IO13", None),
    "PIN_TFT_BL": ("pin", "IO14", None),
    "PIN_BTN_NEXT": ("pin", "IO4", None),
    "PIN_BTN_ENTER": ("pin", "IO5", None),
    "PIN_I2C_SDA": ("pin", "IO1", None),
    "PIN_I2C_SCL": ("pin", "IO2", None),
}

# Where the web settings page keeps its files on the SD card: the board's private dot-folder
# (``configvalues.PRIVATE_DIR``). Boot (``device.main``), the simulator and the web page all use
# these constants.
OVERRIDE_DIR = PRIVATE_DIR
OVERRIDE_SLOTS = (OVERRIDE_DIR + "/settings-1.toml", OVERRIDE_DIR + "/settings-2.toml")
OVERRIDE_MAX = 16384  # bytes; a larger file is reported and ignored, never cut short
WEB_PASSWORD_PATH = OVERRIDE_DIR + "/webpass.txt"  # the generated web password
LEGACY_OVERRIDE = configvalues.LEGACY_OVERRIDE  # read once, removed by the next save
LEGACY_WEB_PASSWORD = configvalues.LEGACY_WEB_PASSWORD


OUTPUTS = configvalues.OUTPUTS  # the network outputs (assemble.build starts them)

SECRETS = tuple(name for name, row in SCHEMA.items() if row[0] in ("key", "secret"))

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def defaults(cfg):
    """Set every setting of ``cfg`` to its default (``Config()`` calls this)."""
    for name, spec in SCHEMA.items():
        setattr(cfg, name, spec[1])


def public(cfg):
    """Settings of ``cfg`` safe to show (the web settings page, /api/status): secrets as
    set/unset."""
    out = {}
    for name in SCHEMA:
        value = getattr(cfg, name)
        if name in SECRETS:
            out[name] = bool(value)
        else:
            out[name] = value
    return out


_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_HOST_CHARS = _ALNUM + ".-:"
# name: (min length, max length, allowed characters or None, characters refused)
_TEXT_RULES = {
    "HOSTNAME": (1, 26, _ALNUM + "-", ""),
    "MQTT_BASE_TOPIC": (1, 64, None, "#+"),
    "MQTT_DISCOVERY_PREFIX": (1, 64, None, "#+"),
    "GRAPHITE_PREFIX": (0, 64, _ALNUM + "_-.", ""),
    "GRAPHITE_HOST": (0, 253, _HOST_CHARS, ""),
    "MQTT_HOST": (0, 253, _HOST_CHARS, ""),
    "NTP_SERVER": (0, 253, _HOST_CHARS, ""),
    "WEB_USER": (1, 32, None, ":"),
    "MQTT_USER": (0, 64, None, ""),
    "WEB_PASSWORD": (8, 64, None, ""),  # empty = generated; a longer one would not fit a header
    "AP_PASSWORD": (8, 63, None, ""),  # WPA2 passphrase
    "CIRCUITPY_WIFI_PASSWORD": (0, 64, None, ""),
    "MQTT_PASSWORD": (0, 128, None, ""),
}
_OPTIONAL = ("WEB_PASSWORD", "AP_PASSWORD")  # empty is allowed besides min..max


def _is_key(text):
    """A bare TOML key / pin name: ASCII letters, digits and ``_`` (MicroPython has no isalnum)."""
    if not text:
        return False
    for ch in text:
        if ch not in _ALNUM and ch != "_":
            return False
    return True


def is_control(ch):
    """True for characters that must never reach a file, a header or a line protocol."""
    o = ord(ch)
    return o < 32 or 127 <= o < 160 or o in (0x2028, 0x2029)


def _check_text(name, kind, text):
    for ch in text:
        if is_control(ch):
            raise ValueError("must not contain control characters (line breaks, tabs, NUL)")
    if kind == "str" and len(text) > 200 and name != "GRID_FEE_WINDOWS":
        raise ValueError("is too long")
    if name == "LOG_DIR":
        parts = text.split("/")
        if parts[0] != "" or len(parts) < 2:
            raise ValueError("must be an absolute folder such as /sd/logs")
        for part in parts[1:]:
            if not part or any(ch not in _ALNUM + "_-" for ch in part):
                raise ValueError("folder names may hold letters, digits, _ and - only")
        return
    if name == "GRID_FEE_WINDOWS":
        if len(text) > 400:
            raise ValueError("is too long")
        from .datalog.gridfee import parse

        parse(text, 1000)  # raises ValueError naming the window and the field
        return
    if name == "INFLUX_URL" and text:
        if not (text.startswith("http://") or text.startswith("https://")) or " " in text:
            raise ValueError("must be an http:// or https:// address without spaces")
        return
    rule = _TEXT_RULES.get(name)
    if rule is None:
        return
    lo, hi, allowed, refused = rule
    n = len(text.encode())
    if n == 0 and name in _OPTIONAL:
        return
    if not lo <= n <= hi:
        raise ValueError("must be %d to %d characters long" % (lo, hi))
    for ch in text:
        if (allowed is not None and ch not in allowed) or ch in refused:
            if allowed is not None:
                raise ValueError("may only hold " + _describe(allowed))
            raise ValueError("must not contain " + " or ".join(refused))
    if name == "HOSTNAME" and (text[0] == "-" or text[-1] == "-"):
        raise ValueError("must not start or end with -")


def _describe(allowed):
    extra = allowed.replace(_ALNUM, "")
    return "letters, digits" + (" and " + " ".join(extra) if extra else "")


def _convert(name, kind, raw, extra):
    """Convert one raw setting (str, int or bool) to its type; raise ValueError with a message."""
    if kind in ("str", "secret", "pin"):
        if not isinstance(raw, str):
            raw = str(raw)
        text = raw.strip()
        if kind == "pin" and text and not _is_key(text):
            raise ValueError("is not a pin name")
        _check_text(name, kind, text)
        return text
    if kind == "int":
        if isinstance(raw, bool):
            raise ValueError("must be a whole number")
        try:
            value = int(str(raw).strip().replace("_", ""))
        except ValueError:
            raise ValueError("must be a whole number") from None
        lo, hi = extra
        if not lo <= value <= hi:
            raise ValueError("must be between %d and %d" % (lo, hi))
        return value
    if kind == "milli":
        value = parse_milli(raw)
        lo, hi = extra
        if not lo <= value <= hi:
            raise ValueError("must be between %s and %s" % (format_milli(lo), format_milli(hi)))
        return value
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("must be true or false")
    if kind == "choice":
        text = str(raw).strip().lower()
        if text not in extra:
            raise ValueError("must be one of: " + ", ".join(extra))
        return text
    if kind == "key":
        text = str(raw).strip()
        if not text:
            return None
        try:
            return parse_key(text, name)
        except KeyFormatError as exc:
            raise ValueError(str(exc).replace(name + " ", "", 1)) from None
    raise ValueError("unknown setting kind")


def parse_milli(raw):
    """ "24.95", "24,95", 24 or "-0.5" -> thousandths as int (24950). Integer math only.

    :raises ValueError: not a number, or more than 3 decimals
    """
    if isinstance(raw, bool):
        raise ValueError("must be a number")
    if isinstance(raw, int):
        return raw * 1000
    text = str(raw).strip().replace(",", ".").replace("_", "")
    neg = text.startswith("-")
    if neg or text.startswith("+"):
        text = text[1:]
    whole, _, frac = text.partition(".")
    if not (whole or frac) or (whole and not whole.isdigit()) or (frac and not frac.isdigit()):
        raise ValueError("must be a number like 24.95")
    if len(frac) > 3:
        raise ValueError("must have at most 3 decimals")
    value = int(whole or "0") * 1000 + int((frac + "000")[:3])
    return -value if neg else value


def format_milli(value):
    """Thousandths as the shortest decimal text: 24950 -> "24.95"."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 1000)
    if not frac:
        return "%s%d" % (sign, whole)
    return ("%s%d.%03d" % (sign, whole, frac)).rstrip("0")


def load(getenv, overrides=None):
    """Build a Config from ``getenv(name)`` (``os.getenv``) and an optional overrides dict.

    :returns: a Config; never raises for bad values (see ``Config.problems``)
    """
    cfg = Config()
    overrides = overrides or {}
    for name, (kind, default, extra) in SCHEMA.items():
        raw = overrides.get(name)
        if raw is None:
            try:
                raw = getenv(name)
            except Exception:  # noqa: BLE001 - a broken settings.toml must not stop the board
                raw = None
        if raw is None:
            continue
        try:
            setattr(cfg, name, _convert(name, kind, raw, extra))
        except ValueError as exc:
            cfg.problems.append("%s %s" % (name, exc))
    if cfg.FEED_IN_DYNAMIC and not cfg.PRICE_DYNAMIC:
        cfg.problems.append(
            "FEED_IN_DYNAMIC needs PRICE_DYNAMIC = true (the market prices come with the"
            " day-ahead prices)"
        )
    if not cfg.GRID_FEE_CT_KWH and "%" in cfg.GRID_FEE_WINDOWS:
        cfg.problems.append(
            "GRID_FEE_WINDOWS has a percentage but GRID_FEE_CT_KWH is 0: set it, or give ct/kWh"
        )
    return cfg


def parse_toml(text):
    """Parse the settings.toml subset CircuitPython supports: root-level ``KEY = value`` lines.

    Values: "basic strings" (with \\" \\\\ \\n \\t \\uXXXX escapes), integers, true/false. Comments
    with #. Tables and arrays are not part of the subset and are reported.

    :returns: (dict, problems) - problems name the line, never the value
    """
    values = {}
    problems = []
    # Lines end at LF only (CRLF tolerated): ``splitlines`` would also split at CR, VT, FF and
    # U+2028, which is how a value holding one once became a hidden setting of its own.
    for lineno, line in enumerate(text.split("\n"), 1):
        s = line.strip(" \t\r")
        if not s or s.startswith("#"):
            continue
        if "=" not in s:
            problems.append("line %d: expected KEY = value" % lineno)
            continue
        key, _, rest = s.partition("=")
        key = key.strip()
        rest = rest.strip()
        if not _is_key(key):
            problems.append("line %d: bad key" % lineno)
            continue
        try:
            values[key] = _toml_value(rest)
        except ValueError:
            problems.append(
                "line %d: %s has a value that is not a string, number or bool" % (lineno, key)
            )
    return values, problems


def _toml_value(rest):
    if rest.startswith('"'):
        out = []
        i = 1
        while i < len(rest):
            ch = rest[i]
            if ch == "\\":
                i += 1
                if i >= len(rest):
                    raise ValueError
                esc = rest[i]
                if esc in "uU":
                    width = 4 if esc == "u" else 8
                    digits = rest[i + 1 : i + 1 + width]
                    if len(digits) != width:
                        raise ValueError
                    out.append(chr(int(digits, 16)))
                    i += width
                elif esc in _UNESCAPE:
                    out.append(_UNESCAPE[esc])
                else:
                    raise ValueError
            elif ch == '"':
                tail = rest[i + 1 :].strip()
                if tail and not tail.startswith("#"):
                    raise ValueError
                return "".join(out)
            else:
                out.append(ch)
            i += 1
        raise ValueError
    token = rest.split("#", 1)[0].strip()
    if token in ("true", "false"):
        return token == "true"
    return int(token.replace("_", ""), 0)


_UNESCAPE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "\\": "\\"}
_ESCAPE = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}
_ESCAPE['"'] = '\\"'
_ESCAPE["\\"] = "\\\\"


def quote(value):
    """A TOML basic string for ``value``: every control character escaped, so a value can never
    end its line (the one writer of the override file)."""
    out = ['"']
    for ch in str(value):
        esc = _ESCAPE.get(ch)
        if esc is not None:
            out.append(esc)
        elif is_control(ch):
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dump_toml(values):
    """Write a dict as settings.toml lines (for the SD override file).

    :raises ValueError: for a key that is not a bare TOML key (letters, digits, ``_``)
    """
    lines = []
    for key in sorted(values):
        if not _is_key(key):
            raise ValueError("bad setting name")
        value = values[key]
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = quote(value)
        lines.append("%s = %s" % (key, text))
    return "\n".join(lines) + "\n"
