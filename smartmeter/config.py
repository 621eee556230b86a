# SPDX-License-Identifier: MIT
"""Settings: read once, validated, typed; every problem names the key and never echoes a secret.

Sources, later ones win: ``settings.toml`` (through ``os.getenv`` on the device, which returns
str from CircuitPython 10.2 on - every value is converted here), then the override file on the SD
card that the web settings page writes (CIRCUITPY is read-only to code while USB is connected).
A bad value keeps the default and adds a line to ``Config.problems``; the firmware runs on in a
degraded mode that shows the problem instead of crashing into the REPL.
"""

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
    "METER_TRANSPORT": ("choice", "auto", ("auto", "mbus", "hdlc")),
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
    # Usage and cost (smartmeter/datalog/usage.py, smartmeter/outputs/prices.py)
    "PRICE_CT_KWH": ("milli", 0, (0, 1_000_000)),  # gross ct/kWh, 0 = unknown
    "FEED_IN_CT_KWH": ("milli", 0, (0, 1_000_000)),
    "BASE_FEE_EUR_MONTH": ("milli", 0, (0, 1_000_000)),
    "PRICE_DYNAMIC": ("bool", False, None),
    "PRICE_API_URL": ("str", "https://api.awattar.at/v1/marketdata", None),
    "PRICE_MARKUP_CT_KWH": ("milli", 0, (-1_000_000, 1_000_000)),
    "PRICE_VAT_PERCENT": ("milli", 20_000, (0, 100_000)),
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

SECRETS = ("METER_KEY", "METER_AUTH_KEY", "WEB_PASSWORD", "MQTT_PASSWORD")
SECRETS += ("CIRCUITPY_WIFI_PASSWORD", "AP_PASSWORD")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class Config:
    """Validated settings as attributes named like the keys (``config.WEB_PORT``).

    :ivar problems: list of "KEY: what is wrong" texts (never containing a secret value)
    :ivar missing: list of keys the firmware needs but that are not set (METER_KEY, WiFi)
    """

    def __init__(self):
        for name, spec in SCHEMA.items():
            setattr(self, name, spec[1])
        self.problems = []
        self.missing = []

    def __repr__(self):
        # Never show secrets, even by accident in a traceback or a debug print.
        return "<Config %d settings, %d problems>" % (len(SCHEMA), len(self.problems))

    def public(self):
        """Settings safe to show (the web settings page, /api/status): secrets as set/unset."""
        out = {}
        for name in SCHEMA:
            value = getattr(self, name)
            if name in SECRETS:
                out[name] = bool(value)
            else:
                out[name] = value
        return out

    @property
    def baudrate(self):
        """The UART speed: METER_BAUD, or the transport's standard speed."""
        if self.METER_BAUD:
            return self.METER_BAUD
        return 9600 if self.METER_TRANSPORT == "hdlc" else 2400

    @property
    def parity(self):
        """ "even" | "none" | "odd": M-Bus is 8E1, HDLC 8N1 unless METER_PARITY says otherwise."""
        if self.METER_PARITY != "auto":
            return self.METER_PARITY
        return "none" if self.METER_TRANSPORT == "hdlc" else "even"


def _convert(name, kind, raw, extra):
    """Convert one raw setting (str, int or bool) to its type; raise ValueError with a message."""
    if kind in ("str", "secret", "pin"):
        if not isinstance(raw, str):
            raw = str(raw)
        text = raw.strip()
        if kind == "pin" and text and not text.replace("_", "").isalnum():
            raise ValueError("is not a pin name")
        if kind == "str" and len(text) > 200:
            raise ValueError("is too long")
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
    if cfg.METER_KEY is None:
        cfg.missing.append("METER_KEY")
    if not cfg.CIRCUITPY_WIFI_SSID:
        cfg.missing.append("CIRCUITPY_WIFI_SSID")
    return cfg


def parse_toml(text):
    """Parse the settings.toml subset CircuitPython supports: root-level ``KEY = value`` lines.

    Values: "basic strings" (with \\" \\\\ \\n \\t \\uXXXX escapes), integers, true/false. Comments
    with #. Tables and arrays are not part of the subset and are reported.

    :returns: (dict, problems) - problems name the line, never the value
    """
    values = {}
    problems = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if "=" not in s:
            problems.append("line %d: expected KEY = value" % lineno)
            continue
        key, _, rest = s.partition("=")
        key = key.strip()
        rest = rest.strip()
        if not key or not key.replace("_", "").isalnum():
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
                if esc == "u":
                    out.append(chr(int(rest[i + 1 : i + 5], 16)))
                    i += 4
                else:
                    out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(esc, esc))
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


def dump_toml(values):
    """Write a dict as settings.toml lines (for the SD override file)."""
    lines = []
    for key in sorted(values):
        value = values[key]
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"').replace(
                "\n", "\\n"
            )
        lines.append("%s = %s" % (key, text))
    return "\n".join(lines) + "\n"
