# SPDX-License-Identifier: MIT
"""A decoded telegram: what the meter said, plus what we derive from it.

Values are keyed by OBIS code text ``"A-B:C.D.E"`` and scaled to base units with the frame's own
scalers: energy as integer Wh/varh, power as W/var (int), voltage V, current A and power factor
as floats, text as str. A value the meter did not send is absent from ``values`` - never 0:
``reading.get(key)`` gives None for it. Meters differ in what they send (Wiener Netze, AMIS and
the T210-D-r send no voltages, currents or power factor; several send reactive energy and power):
:data:`FIELDS` is the one list of the values the firmware knows, with their units, for sinks that
lay out columns or entities. Derived quantities live apart, in ``derived``.
"""

from ..timeutil import format_offset

# OBIS codes used throughout the firmware (interned once; sinks index ``values`` with these).
A_PLUS = "1-0:1.8.0"
A_MINUS = "1-0:2.8.0"
R_PLUS = "1-0:3.8.0"
R_MINUS = "1-0:4.8.0"
P_PLUS = "1-0:1.7.0"
P_MINUS = "1-0:2.7.0"
Q_PLUS = "1-0:3.7.0"
Q_MINUS = "1-0:4.7.0"
U_L1 = "1-0:32.7.0"
U_L2 = "1-0:52.7.0"
U_L3 = "1-0:72.7.0"
I_L1 = "1-0:31.7.0"
I_L2 = "1-0:51.7.0"
I_L3 = "1-0:71.7.0"
POWER_FACTOR = "1-0:13.7.0"
METER_NUMBER = "0-0:96.1.0"
DEVICE_NAME = "0-0:42.0.0"

AMIS_BILLING = "1-0:1.128.0"  # Netz OÖ AMIS "Inkassozählwerk" (int32)

# Every value the firmware knows, in display order: (OBIS key, unit). Energy and power are
# integers (Wh, varh, W, var); voltage, current and power factor floats; the rest text/ints.
# Tariff registers (1.8.1, 1.8.2, ...) and other codes a meter sends are kept in ``values`` too.
FIELDS = (
    (A_PLUS, "Wh"),
    (A_MINUS, "Wh"),
    (R_PLUS, "varh"),
    (R_MINUS, "varh"),
    (P_PLUS, "W"),
    (P_MINUS, "W"),
    (Q_PLUS, "var"),
    (Q_MINUS, "var"),
    (U_L1, "V"),
    (U_L2, "V"),
    (U_L3, "V"),
    (I_L1, "A"),
    (I_L2, "A"),
    (I_L3, "A"),
    (POWER_FACTOR, ""),
    (METER_NUMBER, ""),
    (DEVICE_NAME, ""),
)
REACTIVE = (R_PLUS, R_MINUS, Q_PLUS, Q_MINUS)

VOLTAGES = (U_L1, U_L2, U_L3)
CURRENTS = (I_L1, I_L2, I_L3)

# Layouts whose voltages/currents are sent as plain uint16 without scaler or unit (Klagenfurt's
# self-describing E450 list): kept as sent, but no apparent power or power factor from them
UNSCALED_UI = ("e450-list",)

# Derived keys
# What the board adds to each reading (the app's ``extras``): its sensor and WiFi signal
TEMPERATURE = "temperature"  # deg C (HTE501)
HUMIDITY = "humidity"  # %RH
RSSI = "rssi"  # dBm
EXTRAS = (TEMPERATURE, HUMIDITY, RSSI)
# The row's clock (the app's ``extras``, a CSV column): None when the meter's time stamps it,
# CLOCK_BOARD when the meter's clock is wrong and the board's (NTP) does, CLOCK_METER_WRONG
# when the meter's clock is wrong and the board has none: its wrong time is the only one
CLOCK_FLAG = "meter_clock"
CLOCK_BOARD = 1
CLOCK_METER_WRONG = 2
APPARENT_POWER = "apparent_power"  # VA, sum(Ux * Ix) over the phases sent
DERIVED_PF = "power_factor"  # (P+ - P-) / S, clamped to [-1, 1]

_SECURITY_NAMES = {0: "plain", 0x20: "encrypted", 0x30: "encrypted+authenticated"}
# A telegram that carries a GCM tag, decrypted without METER_AUTH_KEY: its tag was not verified
SECURITY_UNCHECKED = "encrypted, tag not checked"


def security_name(sc):
    """Name of a security control byte: "plain", "encrypted" or "encrypted+authenticated"."""
    if sc is None:
        return "plain"
    return _SECURITY_NAMES.get(sc & 0x30, "plain")


class Reading:
    """One decoded telegram.

    :ivar system_title: 8 bytes or None (plaintext input)
    :ivar frame_counter: int or None
    :ivar security: "plain" | "encrypted" | "encrypted+authenticated" |
        "encrypted, tag not checked" (:data:`SECURITY_UNCHECKED`: the telegram has a tag but no
        METER_AUTH_KEY is set; the hint "set METER_AUTH_KEY to verify telegrams" belongs to it)
    :ivar layout: name of the layout that decoded the body
    :ivar meter_time: (year, month, day, hour, minute, second) local meter time, or None
    :ivar utc_offset: minutes east of UTC the meter stated (+60 for CET), or None if it did not
    :ivar offset_derived: True when ``utc_offset`` was not sent by the meter but derived from the
        Austrian summer-time rules (AMIS, whose CP48 time is local time without an offset)
    :ivar values: dict OBIS -> value (only what the meter sent)
    :ivar derived: dict of derived values (apparent power, power factor) - never mixed into values
    """

    __slots__ = (
        "system_title",
        "frame_counter",
        "security",
        "layout",
        "meter_time",
        "utc_offset",
        "offset_derived",
        "dst",
        "values",
        "derived",
    )

    def __init__(self):
        self.system_title = None
        self.frame_counter = None
        self.security = "plain"
        self.layout = None
        self.meter_time = None
        self.utc_offset = None
        self.offset_derived = False
        self.dst = None
        self.values = {}
        self.derived = {}

    def get(self, key):
        """The value for OBIS ``key``, or None when this meter did not send it."""
        return self.values.get(key)

    @property
    def tag_unchecked(self):
        """True if the telegram had a GCM tag that was not verified (no METER_AUTH_KEY)."""
        return self.security == SECURITY_UNCHECKED

    @property
    def meter_number(self):
        """The meter number (0-0:96.1.0) or None."""
        return self.values.get(METER_NUMBER)

    @property
    def maker(self):
        """Three-letter FLAG id of the maker from the system title ("KFM", "SAG", ...) or None."""
        st = self.system_title
        if not st or len(st) < 3:
            return None
        try:
            text = bytes(st[:3]).decode()
        except (UnicodeError, ValueError):
            return None
        return text if text.isalpha() else None

    def derive(self):
        """Compute ``derived`` from ``values``: apparent power S and power factor (P+ - P-) / S.

        Nothing is derived for layouts whose voltages and currents come without a stated scale
        (:data:`UNSCALED_UI`): an apparent power from them could be off by a factor of 100.
        """
        if self.layout in UNSCALED_UI:
            return self.derived
        get = self.values.get
        s = 0.0
        n = 0
        u, i = get(U_L1), get(I_L1)
        if u is not None and i is not None:
            s += u * i
            n += 1
        u, i = get(U_L2), get(I_L2)
        if u is not None and i is not None:
            s += u * i
            n += 1
        u, i = get(U_L3), get(I_L3)
        if u is not None and i is not None:
            s += u * i
            n += 1
        derived = self.derived
        if n:
            derived[APPARENT_POWER] = round(s, 1)
            p_plus = get(P_PLUS)
            if p_plus is not None and s > 0:
                pf = (p_plus - get(P_MINUS, 0)) / s
                derived[DERIVED_PF] = round(1.0 if pf > 1.0 else -1.0 if pf < -1.0 else pf, 3)
        return derived

    def iso_time(self):
        """Meter time as ISO 8601 text, with the offset when the meter stated one."""
        t = self.meter_time
        if t is None:
            return None
        text = "%04d-%02d-%02dT%02d:%02d:%02d" % t
        if self.utc_offset is None:
            return text
        return text + format_offset(self.utc_offset)

    def as_dict(self):
        """The JSON-ready form used by the CLI and the web API."""
        st = self.system_title
        return {
            "system_title": bytes(st).hex().upper() if st else None,
            "frame_counter": self.frame_counter,
            "meter_time": self.iso_time(),
            "security": self.security,
            "offset_derived": self.offset_derived,
            "layout": self.layout,
            "values": dict(self.values),
            "derived": dict(self.derived),
        }


# -- values a meter cannot mean (issue 18) ----------------------------------------------------
# A power or energy value outside these bounds is dropped from its telegram (absent, like a value
# the meter does not send), counted (decoder ``implausible``) and named (``last_implausible``):
# never logged, graphed or sent. Power (OBIS C.7.E, W/var): above POWER_MAX_W in size - a
# household connection allows about 43 kW (3 x 63 A), a large one with current transformers a
# few hundred kW - or negative where the quantity has no sign (P+, P-, Q+, Q-, per phase too).
# The all-ones "no value" of a 32-bit register (4 294 967 295 or 2 147 483 647, seen in AMIS
# telegrams) is far beyond either bound. Energy registers (C.8.E, Wh/varh): negative, or from
# ENERGY_MAX_WH (2 147 483 647 Wh = 2.1 GWh, the int32 limit; a household uses 5 MWh a year).
POWER_MAX_W = 250_000
ENERGY_MAX_WH = 2_147_483_647
# An energy register a little lower than before (at most BACK_WH, same meter) is a glitch, not a
# meter change: Home Assistant (total_increasing would take it for a reset and count the whole
# register again) and the usage summary skip it. A replaced meter starts near 0, far below.
BACK_WH = 1000
_SIGNED_POWER_C = (15, 16, 35, 36, 55, 56, 75, 76)  # sums and "P+ - P-" forms may be negative
_QUANTITY_C = (1, 2, 3, 4, 9, 10, 15, 16)  # totals; +20/+40/+60: per phase
_KINDS = {}  # OBIS key -> 0 (not screened) 1 (unsigned power) 2 (signed power) 3 (energy)
_KINDS_MAX = 64


def _kind(key):
    kind = _KINDS.get(key)
    if kind is not None:
        return kind
    kind = 0
    if key.startswith("1-0:"):
        parts = key[4:].split(".")
        if len(parts) == 3 and parts[0].isdigit() and parts[1] in ("7", "8"):
            c = int(parts[0])
            base = c % 20  # 21..36 L1, 41..56 L2, 61..76 L3: the same quantities per phase
            if base in _QUANTITY_C and c < 80:
                if parts[1] == "8":
                    kind = 3
                else:
                    kind = 2 if c in _SIGNED_POWER_C else 1
    if len(_KINDS) < _KINDS_MAX:  # bounded: a meter sends a few dozen codes at most
        _KINDS[key] = kind
    return kind


def energy_register(key):
    """True for an energy register (OBIS 1-0:C.8.E of import/export, active or reactive)."""
    return _kind(key) == 3


def implausible(key, value):
    """True when ``value`` of OBIS ``key`` is one a meter cannot mean (see POWER_MAX_W)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    kind = _kind(key)
    if not kind:
        return False
    if value - value != 0:  # NaN, infinity
        return True
    if kind == 3:
        return value < 0 or value >= ENERGY_MAX_WH
    if kind == 1 and value < 0:
        return True
    return value > POWER_MAX_W or value < -POWER_MAX_W


def screen(reading):
    """Drop the values of ``reading`` a meter cannot mean; ``(count, text of the first)``.

    The derived values are computed again without them. ``(0, None)`` when all are plausible.
    """
    values = reading.values
    bad = None
    for key in values:
        if implausible(key, values[key]):
            if bad is None:
                bad = []
            bad.append(key)
    if bad is None:
        return 0, None
    first = bad[0]
    text = "%s = %s dropped (implausible)" % (first, values[first])
    for key in bad:
        del values[key]
    reading.derived = {}
    reading.derive()
    return len(bad), text
