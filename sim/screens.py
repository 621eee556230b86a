# SPDX-License-Identifier: MIT
"""Render every TFT screen from the real code into PNG files.

``python -m sim.screens [OUT_DIR] [--all]`` writes ``<lang>-<scenario>-<screen>.png`` to
docs/screens/ (the README shows them). Without ``--all`` it writes the normal screens of both
languages, the absent and extreme data screens and the status screen of each problem; ``--all``
also writes every data screen of every problem state (with the red banner).

The scenarios here are also the fixtures of tests/host/test_ui.py.
"""

import os
import sys
import time

try:
    HERE = os.path.dirname(os.path.abspath(__file__))
    ROOT = os.path.dirname(HERE)
except AttributeError:  # CircuitPython VM (tests/host/test_board_display.py): no os.path
    HERE = ROOT = None
if ROOT and ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from smartmeter.outputs import graphite, mqtt  # noqa: E402
from smartmeter.protocol import reading as r  # noqa: E402
from smartmeter.state import State  # noqa: E402
from smartmeter.ui.screens import CYCLE, SCREENS  # noqa: E402

NOW_MS = 1_000_000  # the "now" of every scenario (ticks)
# Derived from the firmware's one list of screens (never copied by hand)
ALL_SCREENS = tuple(name for name, _cycle in SCREENS)
DATA_SCREENS = tuple(name for name in CYCLE if name not in ("status", "menu"))
LANGUAGES = ("de", "en")


def _reading(values, meter_time=(2024, 5, 1, 12, 34, 56)):
    rd = r.Reading()
    rd.layout = "netznoe"
    rd.security = "encrypted"
    rd.frame_counter = 1234
    rd.meter_time = meter_time
    rd.utc_offset = 120
    rd.values.update(values)
    rd.derive()
    return rd


_USAGE = []


def usage_inputs(end_epoch=1714559696):
    """What :func:`usage_month` is made of: ``(market, registers)``, the day-ahead prices
    ``[(quarter, mct)]`` for the last day and the next, and the meter's registers
    ``[(epoch, import Wh, export Wh)]`` every 5 minutes for 40 days (base load, evening peak,
    PV export at noon). Computed with double floats: the board in a box gets these as data
    (its 30-bit floats would give other curves from the same formulas)."""
    import math

    first = (end_epoch - 86400) // 900
    market = [
        (q, int(1000 * (95 + 60 * math.sin(q / 11.0) + 7 * (q % 4))))
        for q in range(first, first + 192)
    ]
    registers = []
    imp = 12_000_000
    exp = 2_300_000
    start = end_epoch - 40 * 86400
    for t in range(start, end_epoch + 1, 300):
        hour = (t % 86400) / 3600.0 + 2
        imp += int(30 + 60 * math.exp(-((hour - 19) ** 2) / 3) + 10 * math.sin(t / 7000.0) ** 2)
        exp += int(max(0.0, 180 * math.sin((hour - 7) / 12 * math.pi)))
        registers.append((t, imp, exp))
    return market, registers


def usage_month(end_epoch=1714559696, inputs=None):
    """A usage summary of 40 days up to ``end_epoch`` from :func:`usage_inputs` (or ``inputs``),
    with a fixed tariff and base fee, and day-ahead prices per quarter hour (so the screen shows
    the price now and of the next quarter). Built once, shared read-only."""
    if _USAGE:
        return _USAGE[0]
    from smartmeter.datalog.gridfee import GridFees
    from smartmeter.datalog.market import MarketTariff
    from smartmeter.datalog.outlook import Outlook
    from smartmeter.datalog.usage import Usage

    market, registers = inputs or usage_inputs(end_epoch)
    tariff = MarketTariff(
        price_mct=24_950, feed_in_mct=7_000, base_fee_mct=450_000, markup_mct=1_440, vat_mpct=20_000
    )
    tariff.set_market([tuple(m) for m in market])
    tariff.fees = GridFees(8_500, "4-9 Mo-So 10-16 -20%")  # the summer low rate (not in May)
    tariff.outlook = Outlook(tariff, tariff.fees)
    u = Usage(tariff)
    for t, imp, exp in registers:
        u.add(t, imp, exp)
    _USAGE.append(u)
    return u


def _healthy_state(rd):
    st = State()
    st.usage = usage_month()
    st.latest = rd
    st.latest_ticks = NOW_MS - 3000
    st.latest_epoch = 1714559696
    st.key_set = True
    st.clock_set = True
    st.wifi_connected = True
    st.wifi_ssid = "Heimnetz"
    st.wifi_rssi = -67
    st.ip = "192.168.1.42"
    st.hostname = "smartmeter"
    st.sd_state = "ok"
    st.sd_free = 29_100_000_000
    st.sd_total = 31_900_000_000
    st.temperature = 23.4
    st.humidity = 45.6
    st.sensor_state = "ok"
    st.uptime_s = 3 * 86400 + 4 * 3600 + 5 * 60 + 6
    st.version = "0.1.0"
    c = st.counters
    c.bytes_in = 1_234_567
    c.frames_ok = c.telegrams = 12345
    c.decoded = 12340
    c.checksum_errors = 3
    c.wrong_key = 2
    return st


NORMAL_VALUES = {
    r.A_PLUS: 12_345_678,  # Wh
    r.A_MINUS: 2_345_678,
    r.P_PLUS: 830,
    r.P_MINUS: 0,
    r.U_L1: 231.4,
    r.U_L2: 229.8,
    r.U_L3: 232.0,
    r.I_L1: 2.35,
    r.I_L2: 0.47,
    r.I_L3: 1.12,
    r.POWER_FACTOR: 0.912,
    r.METER_NUMBER: "1KFM0200204402",
}

EXTREME_VALUES = {
    r.A_PLUS: 99_999_000,  # 99 999 kWh
    r.A_MINUS: -1_234_567,  # negative export register
    r.P_PLUS: 999_999,
    r.P_MINUS: -5_000,
    r.U_L1: 999.9,
    r.U_L2: 1234.5,
    r.U_L3: 0.0,
    r.I_L1: 99.99,
    r.I_L2: 123.45,
    r.I_L3: -12.34,
    r.POWER_FACTOR: -1.0,
}


def normal():
    """Every value present, nothing wrong."""
    return _healthy_state(_reading(NORMAL_VALUES))


def absent():
    """A meter that sends only the energy registers and import power; no sensor, no RSSI."""
    st = _healthy_state(_reading({r.A_PLUS: 5_432_100, r.P_PLUS: 480}))
    st.temperature = st.humidity = None
    st.wifi_rssi = None
    st.usage = None
    st.sensor_state = "absent"
    st.web_password_generated = "kX7-pQ2-mZ9"
    return st


def extreme():
    """Values at the edges of every slot, negative export, 99 999 kWh."""
    st = _healthy_state(_reading(EXTREME_VALUES, (2099, 12, 31, 23, 59, 59)))
    st.temperature = -40.5
    st.humidity = 100.0
    st.wifi_rssi = -100
    st.uptime_s = 999 * 86400 + 23 * 3600 + 59 * 60 + 59
    st.wifi_ssid = "A-very-long-network-name-that-does-not-fit"
    st.hostname = "smartmeter-livingroom-basement"
    c = st.counters
    c.decoded = 987_654_321
    c.checksum_errors = 123_456
    return st


def _problem(setup):
    def make():
        st = normal()
        setup(st)
        return st

    return make


def _stale(st, stage=None):
    st.latest_ticks = NOW_MS - 60_000
    if stage:
        st.last_stage_error = (stage, "x")
        st.last_stage_ticks = NOW_MS - 1000


def _first_boot(st):
    st.latest = None
    st.latest_ticks = None
    st.counters.bytes_in = st.counters.frames_ok = st.counters.decoded = 0


def _everything(st):
    _stale(st)
    st.counters.frames_ok = 0
    st.config_problems = ["METER_KEY: must be 32 hex digits"]
    st.sd_state = "full"
    st.clock_set = False
    st.wifi_connected = False
    st.add_sink(graphite.NAME, graphite.PROBLEMS).state = "error"
    st.add_sink(mqtt.NAME, mqtt.PROBLEMS).state = "auth"
    st.sensor_state = "error"


def _set(**kw):
    def setup(st):
        for k, v in kw.items():
            setattr(st, k, v)

    return setup


PROBLEMS = {
    "no_key": _problem(lambda st: (_first_boot(st), setattr(st, "key_set", False))),
    "first_boot": _problem(_first_boot),
    "no_signal": _problem(_stale),
    "no_frames": _problem(lambda st: (_stale(st), setattr(st.counters, "frames_ok", 0))),
    "wrong_key": _problem(lambda st: _stale(st, "wrong_key")),
    "tag_mismatch": _problem(lambda st: _stale(st, "tag_mismatch")),
    "layout": _problem(lambda st: _stale(st, "layout")),
    "sd_missing": _problem(_set(sd_state="missing", sd_free=None, sd_total=None)),
    "sd_full": _problem(_set(sd_state="full", sd_free=0)),
    "sd_error": _problem(_set(sd_state="error")),
    "no_wifi": _problem(_set(wifi_connected=False, ip=None, wifi_rssi=None)),
    "setup_ap": _problem(
        _set(wifi_connected=False, ap_mode=True, ap_ssid="Smartmeter-1A2B", ap_password="q8Zt4mWx")
    ),
    "everything": _problem(_everything),
}


def wienernetze():
    """A meter that sends less (Wiener Netze AM550): energies, powers and reactive values, no
    voltages, currents or power factor."""
    wn = {r.A_PLUS: 48_922_000, r.A_MINUS: 1_234_000, r.R_PLUS: 96_027, r.R_MINUS: 1_216}
    wn.update({r.P_PLUS: 1068, r.P_MINUS: 0, r.Q_PLUS: 103, r.Q_MINUS: 279})
    rd = _reading(wn)
    rd.layout = "wienernetze"
    return _healthy_state(rd)


SCENARIOS = {"normal": normal, "absent": absent, "extreme": extreme, "wienernetze": wienernetze}
SCENARIOS.update(PROBLEMS)


def cases(full=False):
    """(scenario, screen) pairs to render; ``full`` adds every screen of every problem state."""
    out = [("normal", s) for s in ALL_SCREENS]
    for name in ("absent", "extreme"):
        out += [(name, s) for s in DATA_SCREENS + ("status", "sysinfo")]
    out += [("wienernetze", s) for s in ("phases", "power", "energy")]
    for name in PROBLEMS:
        screens = ALL_SCREENS if full else ("status", "phases", "sysinfo")
        out += [(name, s) for s in screens]
    out += [("message", "short"), ("message", "long")]
    return out


MESSAGES = {
    "short": "Neustart...",
    "long": 'Bitte mit WLAN "Smartmeter-1A2B" verbinden, Passwort q8Zt4mWx, '
    "dann http://192.168.4.1 oeffnen.\nWarte auf Zaehlerdaten...",
}


def render(ui, scenario, screen, now_ms=NOW_MS):
    """Put ``ui`` into ``scenario`` on ``screen`` and draw it (one ``poll``)."""
    if scenario == "message":
        ui.state = normal()
        ui.goto("status")
        ui.poll(now_ms)  # the telegram is seen, so the message stays
        ui.show_message(MESSAGES[screen])
        return
    ui.state = SCENARIOS[scenario]()
    ui.menu_index = 0
    ui.goto(screen)
    ui.poll(now_ms)


def main(argv=None):
    """Write the PNGs; prints what it wrote and the time per screen."""
    from sim.display import make_png_display
    from smartmeter.ui.control import Ui

    args = list(sys.argv[1:] if argv is None else argv)
    full = "--all" in args
    args = [a for a in args if a != "--all"]
    out = args[0] if args else os.path.join(ROOT, "docs", "screens")
    display, snapshot = make_png_display()
    n = 0
    t0 = time.monotonic()
    for lang in LANGUAGES:
        ui = Ui(display, None, normal(), language=lang)
        for scenario, screen in cases(full):
            render(ui, scenario, screen)
            snapshot(os.path.join(out, "%s-%s-%s.png" % (lang, scenario, screen)))
            n += 1
    dt = time.monotonic() - t0
    print("wrote %d screens to %s (%.0f ms each)" % (n, out, 1000 * dt / max(n, 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
