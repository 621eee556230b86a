# SPDX-License-Identifier: MIT
"""Assembling the firmware: the parts, in start order, and how each one starts (boot work).

``app.build`` imports this module, builds the app with :func:`build`, and on the board takes it
out of ``sys.modules`` again: once the parts run nothing here is needed (``App.shed`` keeps the
parts' names in ``app.part_labels``). On a PC it stays (tests read ``PARTS``).
"""

import gc
import sys

from . import app as _core
from .app import _UNLOAD, App, _Actions, unload_modules
from .configvalues import OUTPUTS
from .state import History, State


def _csv(app, hw, cfg, st):
    csv = app.csv = _core._load("datalog.csvlog").CsvSink(hw, cfg, st)
    app.storage = csv.storage
    return csv


def _usage(app, hw, cfg, st):
    # day-ahead prices (their code and 800-byte array: datalog/market.py) only where they are
    # used; a board with fixed prices has the plain Tariff
    if cfg.PRICE_DYNAMIC:
        make = _core._load("datalog.market").MarketTariff
    else:
        make = _core._load("datalog.usage").Tariff
    app.tariff = make(
        cfg.PRICE_CT_KWH,
        cfg.FEED_IN_CT_KWH,
        cfg.BASE_FEE_EUR_MONTH * 100,  # thousandths of a euro -> milli-cent
        cfg.PRICE_MARKUP_CT_KWH,
        cfg.PRICE_VAT_PERCENT,
        cfg.FEED_IN_DYNAMIC,
        cfg.FEED_IN_FEE_CT_KWH,
    )
    fees = None
    if cfg.GRID_FEE_CT_KWH or cfg.GRID_FEE_WINDOWS:
        fees = _core._load("datalog.gridfee").GridFees(cfg.GRID_FEE_CT_KWH, cfg.GRID_FEE_WINDOWS)
    app.tariff.fees = fees
    # the cheapest-window search (datalog/outlook.py, cheapest.py: ~4 KB on the board) only
    # where a cheapest time can exist - prices that vary through the day (day-ahead prices,
    # grid fee windows) - or where Home Assistant gets the outlook (MQTT). Without it the TFT
    # says "no prices" for the cheapest time and still shows the month's peaks and demand.
    if cfg.PRICE_DYNAMIC or cfg.GRID_FEE_WINDOWS or cfg.MQTT_HOST:
        app.tariff.outlook = _core._load("datalog.outlook").Outlook(app.tariff, fees)
    make = _core._load("datalog.usagelog").UsageSink
    app.usage = make(st, app.storage, app.tariff, cfg.ENERGY_OFFSET_WH, hw.clock.ticks_ms)
    return app.usage


def _prices(app, hw, cfg, st):
    make = _core._load("outputs.prices").PriceSink
    return make(cfg, hw.pool, st, app.tariff, hw.clock, hw.ssl_context, app.service_uart)


def _ui(app, hw, cfg, st):
    make = _core._load("ui.control").Ui
    ui = make(hw.display, hw.keys, st, cfg.UI_LANGUAGE, cfg.DISPLAY_TIMEOUT_S, app.actions)
    app.ui = ui
    return ui


def _sensor(app, hw, cfg, st):
    app.sensor = _core._load("sensor").SensorSink(hw.i2c, st, hw.clock)
    return app.sensor


def _setup(app, hw, cfg, st):
    app.netsetup = _core._load("netsetup").NetSetup(cfg, st, hw.radio, hw.clock.ticks_ms())
    return app.netsetup


def _web(app, hw, cfg, st):
    empty = st.history
    if not empty.size:  # the day curve, read by the web page only (see State)
        st.history = History()
    try:
        make = _core._load("web.server").WebServer
        web = make(cfg, st, hw.pool, app.storage, app.actions, hw.clock, app.service_uart)
        web.start(app.listen)  # port in use etc. raises: the part is left out, the rest runs on
    except BaseException:
        st.history = empty  # no web page: its curve goes too
        raise
    app.web = web
    return web


def _output(name):
    """The factory of network output ``name``: its module's ``make(app, hw, cfg, state)``."""
    return lambda app, hw, cfg, st: _core._load("outputs." + name).make(app, hw, cfg, st)


def _switch(key):
    return lambda app, hw, cfg: hw.pool is not None and bool(getattr(cfg, key))


# (name, (English, German, console words), wanted(app, hw, cfg), make(app, hw, cfg, state)), in
# start order: the decoder starts with the app, then CSV logging, the display... On a heap too
# small for all, a part whose make() hits MemoryError is left out and named ("Display off: low
# memory").
# The network outputs come from ``configvalues.OUTPUTS``: a new one needs no row here.
PARTS = (
    (
        "csv",
        ("CSV log", "CSV-Log", "CSV logging"),
        lambda app, hw, cfg: hw.fs is not None and cfg.SD_MODE != "none",
        _csv,
    ),
    # the display before usage and cost: on a heap too small for both, the board keeps the
    # screen that says what is off (SHED_ORDER sheds usage first too)
    ("display", ("Display", "Anzeige", "Display"), lambda app, hw, cfg: hw.display, _ui),
    # usage and cost: only where something can show it (a display, WiFi: web page, MQTT); the
    # CSV files hold what it is made of, and it is rebuilt from them when one comes
    (
        "usage",
        ("Usage/cost", "Verbrauch", "Usage and cost"),
        lambda app, hw, cfg: hw.display or hw.radio or hw.pool,
        _usage,
    ),
    (
        "prices",
        ("Prices", "Preise", "Dynamic prices"),
        lambda app, hw, cfg: (
            hw.pool is not None
            and cfg.PRICE_DYNAMIC
            and cfg.PRICE_API_URL
            and app.tariff is not None
        ),
        _prices,
    ),
    ("sensor", ("Sensor", "Sensor", "Sensor"), lambda app, hw, cfg: hw.i2c, _sensor),
    (
        "setup",
        ("Setup AP", "Setup-AP", "Setup access point"),
        lambda app, hw, cfg: hw.radio is not None and hasattr(hw.radio, "start_ap"),
        _setup,
    ),
)
PARTS += tuple((n, (lb, lb, lb), _switch(key), _output(n)) for n, key, lb in OUTPUTS)
PARTS += (
    (
        "web",
        ("Web page", "Webseite", "Web page"),
        lambda app, hw, cfg: app.want_web and hw.pool is not None,
        _web,
    ),
)


def _new_modules(before):
    if not _UNLOAD:
        return ()
    return [n for n in sys.modules if n not in before]


def _forget(app, state, name):
    """Drop what a part that did not start set before it failed (usage: its tariff, which holds
    the usage module, so unloading it would free nothing)."""
    if name == "usage":
        app.tariff = app.usage = state.usage = None


def build(hw, cfg, state=None, web=True, listen="0.0.0.0"):
    """Assemble the app and every part (``PARTS``) the hardware and settings allow
    (``app.build`` calls this, then unloads this module and makes room).

    Each part is created in isolation: one that fails to start is reported and left out, one
    that hits MemoryError is named on the display, the web page and the console ("CSV logging
    off: not enough memory") while the parts that fit run.
    """
    state = state if state is not None else State(0)  # no day curve until the web part starts
    app = App(hw, cfg, state)
    app.actions = _Actions(app)
    app.want_web = web
    app.listen = listen
    if hw.fs is None or cfg.SD_MODE == "none":
        state.sd_state = "disabled"
    for name, labels, wanted, make in PARTS:
        if not wanted(app, hw, cfg):
            continue
        # the garbage of the last part's imports goes before this one loads: its modules and
        # buffers then find room in one piece instead of between the leftovers (on the board:
        # CPython's heap does not fragment, and a collection of a test process costs ~3 ms)
        if _UNLOAD:
            gc.collect()
        before = set(sys.modules) if _UNLOAD else ()
        try:
            part = make(app, hw, cfg, state)
        except MemoryError:
            _forget(app, state, name)
            unload_modules(_new_modules(before))  # what it loaded before it failed is garbage now
            app.left_out(name, labels)
            continue
        except Exception as exc:  # noqa: BLE001 - a part that cannot start must not stop the board
            _forget(app, state, name)
            unload_modules(_new_modules(before))
            app.remember(name, exc)
            continue
        if part is not None:
            app.sinks.append(part)
            app.parts[name] = part
            app.part_modules[name] = _new_modules(before)
    app.part_labels = {part[0]: part[1] for part in PARTS}
    return app
