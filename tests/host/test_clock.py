"""One clock: every part the app builds takes its time from the injected clock.

The whole firmware is built by the real ``app.build`` with a ``ManualClock`` (display, keys,
sensor, SD card, setup access point, web server and every network output, the last pointed at
a closed port), then runs loop passes and telegrams. A profiler hook records every call of a
wall-clock function (``time.*``, ``supervisor``, ``adafruit_ticks``) made directly from product
code (``smartmeter/``, ``drivers/``); there must be none. Libraries (socket timeouts inside
adafruit_minimqtt ...) may use their own clocks: only our own code is held to the rule.
"""

import socket
import sys
import time
from pathlib import Path

from fakefs import FakeFS
from fakes_i2c import FakeClock, FakeHTE501, FakeI2C
from servers import free_port

from sim.display import make_png_display
from sim.hardware import Console, Hardware, ManualClock, SimKeys, SimRadio, SimUart
from sim.meter import VirtualMeter
from smartmeter import app as app_mod
from smartmeter import config
from smartmeter.timeutil import epoch_from_fields

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = (str(ROOT / "smartmeter") + "/", str(ROOT / "drivers") + "/")
KEY_HEX = "36C66639E48A8CA4D6BC8B282A793BBB"
WALL_MODULES = ("time", "supervisor", "adafruit_ticks")


def _wall_calls(fn):
    """Run ``fn()``; return the wall-clock calls made from product code as (function, file)."""
    seen = []

    def hook(frame, event, arg):
        if event == "c_call":
            mod = getattr(arg, "__module__", None)
            if mod in WALL_MODULES and frame.f_code.co_filename.startswith(PRODUCT):
                seen.append((arg.__qualname__, frame.f_code.co_filename))
        elif event == "call":
            mod = frame.f_globals.get("__name__", "")
            caller = frame.f_back
            if (
                mod in WALL_MODULES
                and caller is not None
                and caller.f_code.co_filename.startswith(PRODUCT)
            ):
                seen.append((frame.f_code.co_name, caller.f_code.co_filename))

    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


def test_the_hook_sees_a_wall_clock_call_from_product_code(tmp_path):
    """The detector itself: a product-code call of time.monotonic() is caught."""
    spy = ROOT / "smartmeter" / "_clock_probe.py"
    code = compile("import time\ndef probe():\n    return time.monotonic()\n", str(spy), "exec")
    ns = {}
    exec(code, ns)  # noqa: S102 - a function whose code claims to live in smartmeter/
    assert [name for name, _ in _wall_calls(ns["probe"])] == ["monotonic"]
    assert _wall_calls(time.monotonic) == []  # the test's own calls do not count


def test_every_part_runs_on_the_injected_clock_only():
    start = epoch_from_fields((2024, 6, 1, 8, 0, 0))
    clock = ManualClock(start_epoch=start, ticks=(1 << 29) - 20_000)
    i2c_ms = FakeClock(0)
    bus = FakeI2C(i2c_ms)
    bus.attach(FakeHTE501(i2c_ms))
    display, _snapshot = make_png_display()
    fs = FakeFS()
    fs.dirs.add("/sd")
    uart = SimUart(buffer_size=8192)
    closed = free_port()  # nothing listens: every output fails fast and backs off
    values = {
        "METER_KEY": KEY_HEX,
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "CIRCUITPY_WIFI_SSID": "home",
        "WEB_PORT": free_port(),
        "GRAPHITE_HOST": "127.0.0.1",
        "GRAPHITE_PORT": closed,
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": closed,
        "INFLUX_URL": "http://127.0.0.1:%d" % closed,
    }
    cfg = config.load(lambda _n: None, values)
    hw = Hardware(
        uart=uart,
        display=display,
        keys=SimKeys(),
        i2c=bus,
        fs=fs,
        mount=fs.mount,
        log_dir="/sd/logs",
        pool=socket,
        radio=SimRadio(),
        clock=clock,
        console=Console(out=None, interactive=False),
    )
    meter = VirtualMeter("netznoe", bytes.fromhex(KEY_HEX), None, seed=7)
    holder = {}

    def run():
        app = holder["app"] = app_mod.build(hw, cfg)
        for _ in range(6):
            uart.push(meter.telegram(clock.epoch))
            for _ in range(5):
                app.loop_once()
                clock.advance(1000)
                i2c_ms.advance(1000)
            sensor = [s for s in app.sinks if getattr(s, "name", "") == "sensor"][0]
            sensor.driver.poll()  # a poll without a time asks the injected clock

    try:
        calls = _wall_calls(run)
        app = holder["app"]
        names = sorted(getattr(s, "name", type(s).__name__) for s in app.sinks)
        assert names == sorted(
            ["csv", "usage", "display", "sensor", "netsetup", "graphite", "mqtt", "influx", "web"]
        ), names
        assert app.state.counters.decoded == 6
        assert app.state.sensor_state == "ok"
        assert calls == [], calls
    finally:
        web = getattr(holder.get("app"), "web", None)
        if web is not None:
            web.stop()
