"""A board whose heap is too small for everything starts what fits and says what it left out.

On CPython a MemoryError is injected where a part's module is loaded (that is where it strikes
first on a small board: importing a module needs its bytecode in the heap); the decoder, CSV
logging and the display must run on and name the missing parts on the display, the web page
(/api/status) and the serial console. The MicroPython VM run of the same app is in
bench/memory_bench.py (and tests/host/test_memory_bench.py).
"""

import json
import socket

from fakefs import FakeFS
from test_ui import texts_on_screen

from sim.display import make_png_display
from sim.hardware import Console, Hardware, ManualClock, SimRadio, SimUart
from sim.meter import VirtualMeter
from smartmeter import app as app_mod
from smartmeter import config
from smartmeter.datalog.csvlog import read_rows
from smartmeter.timeutil import epoch_from_fields
from smartmeter.web import api

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


class FakePool:
    """Enough of a socket pool for the sinks to be built (nothing connects in this test)."""

    AF_INET = 2
    SOCK_STREAM = 1


def build_with_memory_errors(monkeypatch, failing, fs=None):
    real_load = app_mod._load

    def load(name):
        if name in failing:
            raise MemoryError("memory allocation failed, allocating 4096 bytes")
        return real_load(name)

    monkeypatch.setattr(app_mod, "_load", load)
    clock = ManualClock(start_epoch=epoch_from_fields((2024, 5, 1, 10, 0, 0)))
    uart = SimUart()
    display, _snapshot = make_png_display()
    console = Console(out=None, interactive=False)
    fs = fs if fs is not None else FakeFS()
    fs.dirs.add("/sd")
    values = {
        "METER_KEY": KEY,
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "UI_LANGUAGE": "en",
        "CIRCUITPY_WIFI_SSID": "home",
        "MQTT_HOST": "broker.local",
        "GRAPHITE_HOST": "graphite.local",
    }
    cfg = config.load(lambda _n: None, values)
    hw = Hardware(
        uart=uart,
        display=display,
        fs=fs,
        mount=fs.mount,
        log_dir="/sd/logs",
        pool=FakePool(),
        radio=SimRadio(),
        clock=clock,
        console=console,
        mem_free=lambda: 20_480,
    )
    firmware = app_mod.build(hw, cfg, web=True, listen="127.0.0.1")
    return firmware, uart, clock, console, fs


def test_parts_that_hit_memory_error_are_left_out_and_named(monkeypatch):
    firmware, uart, clock, console, fs = build_with_memory_errors(
        monkeypatch, {"outputs.mqtt", "web.server", "outputs.graphite"}
    )
    st = firmware.state
    assert firmware.csv in firmware.sinks and firmware.ui in firmware.sinks
    names = [getattr(sink, "name", None) for sink in firmware.sinks]
    assert not any(n in names for n in ("mqtt", "web", "graphite"))
    assert firmware.web is None
    assert st.left_out == ["off_graphite", "off_mqtt", "off_web"]
    assert st.last_errors["mqtt"] == "not enough memory"

    # console: one plain line per part, at start
    lines = list(console.lines)
    assert "Graphite off: not enough memory (20480 bytes free)" in lines
    assert "MQTT off: not enough memory (20480 bytes free)" in lines
    assert "Web page off: not enough memory (20480 bytes free)" in lines

    # what fits runs: telegrams are decoded and logged
    meter = VirtualMeter("netznoe", bytes.fromhex(KEY), None, seed=3)
    for _ in range(3):
        uart.push(meter.telegram(clock.epoch))
        for _ in range(3):
            firmware.loop_once()
            clock.advance(1700)
    assert st.counters.decoded == 3
    rows = [r for name in fs.listdir("/sd/logs") for r in read_rows(fs, "/sd/logs/" + name)]
    assert len(rows) == 3

    # display (status screen), web page (/api/status) and the periodic console line
    shown = texts_on_screen(firmware.ui)
    assert "Graphite off: low memory" in shown, shown
    status = json.loads(api.status_json(st, "en"))
    texts = [p["text"] for p in status["problems"]]
    assert {"Graphite off: low memory", "MQTT off: low memory", "Web page off: low memory"} <= set(
        texts
    )
    assert "MQTT off: low memory" in firmware.status_line()


def test_csv_left_out_first_in_priority_order(monkeypatch):
    """Even CSV logging can be left out: the decoder still runs and the display says so."""
    firmware, uart, clock, console, _fs = build_with_memory_errors(monkeypatch, {"datalog.csvlog"})
    st = firmware.state
    assert firmware.csv is None and st.left_out == ["off_csv"]
    assert "CSV logging off: not enough memory (20480 bytes free)" in console.lines
    meter = VirtualMeter("netznoe", bytes.fromhex(KEY), None, seed=3)
    uart.push(meter.telegram(clock.epoch))
    firmware.loop_once()
    assert st.counters.decoded == 1
    firmware.ui.poll(clock.ticks_ms())
    shown = texts_on_screen(firmware.ui)
    assert "CSV log off: low memory" in shown, shown
    assert "  Needs a board with PSRAM" in shown, shown


def test_usage_left_out_when_its_tariff_does_not_fit(monkeypatch):
    """The tariff (usage and cost) is loaded outside the sink table: a MemoryError there too
    leaves usage out instead of stopping the board."""
    firmware, uart, clock, console, _fs = build_with_memory_errors(monkeypatch, {"datalog.usage"})
    st = firmware.state
    assert firmware.usage is None and firmware.tariff is None
    assert st.left_out == ["off_usage"]
    assert "Usage and cost off: not enough memory (20480 bytes free)" in console.lines
    meter = VirtualMeter("netznoe", bytes.fromhex(KEY), None, seed=3)
    uart.push(meter.telegram(clock.epoch))
    firmware.loop_once()
    assert st.counters.decoded == 1 and st.counters.csv_rows == 1


def _history_rig(pool, port=0):
    clock = ManualClock(start_epoch=epoch_from_fields((2024, 5, 1, 10, 0, 0)))
    uart = SimUart()
    values = {"METER_KEY": KEY, "SD_MODE": "none", "WEB_PORT": port or 8080}
    hw = Hardware(uart=uart, pool=pool, radio=SimRadio(), clock=clock)
    firmware = app_mod.build(hw, config.load(lambda _n: None, values), listen="127.0.0.1")
    meter = VirtualMeter("netznoe", bytes.fromhex(KEY), None, seed=3)
    for _ in range(3):
        uart.push(meter.telegram(clock.epoch))
        firmware.loop_once()
        clock.advance(61_000)  # one telegram per minute: one point each
    return firmware


def test_the_day_curve_is_held_only_while_the_web_page_runs():
    # no web page (no network): the 11.5 KiB ring of the web page's curve is never allocated
    firmware = _history_rig(None)
    st = firmware.state
    assert firmware.web is None and st.counters.decoded == 3
    assert (
        st.history.size == 0 and len(st.history) == 0 and list(api.history_items(st.history)) == []
    )

    # the web page cannot start (its socket pool fails): left out, and its curve with it
    class BrokenPool(FakePool):
        def socket(self, *args):
            raise OSError(98, "address in use")

    firmware = _history_rig(BrokenPool())
    assert firmware.web is None and "web" in firmware.state.last_errors
    assert firmware.state.history.size == 0 and firmware.state.counters.decoded == 3

    # with the web page: the full ring, filled by the loop and served by /api/history
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    firmware = _history_rig(socket, port)
    try:
        st = firmware.state
        assert firmware.web is not None
        assert st.history.size == 1440 and len(st.history) == 3
        body = "".join(api.history_chunks(st, 60))
        assert len(json.loads(body)["points"]) == 3
    finally:
        firmware.web.stop()


# -- running out of heap while running (the board-in-a-box finding of issue 17: at 160 KiB every
# pass raised MemoryError, 0 of 2000 rows were written and nothing said so) ----------------------


class _Stop(BaseException):
    """Ends App.run() in a test (it catches Exception, not BaseException)."""


def run_passes(firmware, n):
    """The real ``App.run`` loop (with its MemoryError handling), for ``n`` passes."""
    real = firmware.loop_once
    done = [0]

    def once():
        done[0] += 1
        if done[0] > n:
            raise _Stop
        real()

    firmware.loop_once = once
    try:
        firmware.run()
    except _Stop:
        pass
    finally:
        firmware.loop_once = real


def _telegrams(firmware, uart, clock, n, passes=3):
    meter = VirtualMeter("netznoe", bytes.fromhex(KEY), None, seed=3)
    for _ in range(n):
        uart.push(meter.telegram(clock.epoch))
        run_passes(firmware, passes)
        clock.advance(5000)


def test_every_pass_out_of_memory_says_csv_logging_off(monkeypatch):
    """Every telegram's decode raises MemoryError: parts are shed first to last, then console,
    display and web status say "CSV logging off: not enough memory"."""
    firmware, uart, clock, console, fs = build_with_memory_errors(monkeypatch, set())
    st = firmware.state
    assert "csv" in firmware.parts and "display" in firmware.parts
    before = list(st.left_out)

    def no_heap(*_args):
        raise MemoryError("memory allocation failed, allocating 176 bytes")

    monkeypatch.setattr(firmware.pipeline.decoder, "decode", no_heap)
    for _ in range(8):
        _telegrams(firmware, uart, clock, 1)
        if "off_csv" in st.left_out:
            break
    assert st.counters.decoded == 0 and st.counters.csv_rows == 0
    lines = list(console.lines)
    said = [line for line in lines if line.startswith("CSV logging off: not enough memory")]
    assert len(said) == 1, lines
    # shed in SHED_ORDER before that (the outputs, the setup AP, usage); the display stays to
    # say it: status screen and web status
    shed = [line.split(" off:")[0] for line in lines if " off: not enough memory" in line]
    assert shed == ["Graphite", "MQTT", "Setup access point", "Usage and cost", "CSV logging"]
    # "CSV log off" first: the display's status screen shows the first problem
    assert st.left_out == ["off_csv"] + before + [
        "off_graphite",
        "off_mqtt",
        "off_setup",
        "off_usage",
    ]
    assert firmware.ui is not None and "display" in firmware.parts
    assert any(line.startswith("memory: a pass ran out of heap") for line in lines)
    firmware.ui.poll(clock.ticks_ms())
    shown = texts_on_screen(firmware.ui)
    assert "CSV log off: low memory" in shown, shown
    status = json.loads(api.status_json(st, "en"))
    texts = [p["text"] for p in status["problems"]]
    assert "CSV log off: low memory" in texts and "Out of memory" in texts, texts
    assert "CSV log off: low memory" in firmware.status_line()

    # still nothing: the display goes too (its heap may let rows through); said once each
    _telegrams(firmware, uart, clock, 4)
    assert "display" not in firmware.parts and firmware.ui is None
    assert firmware.parts.keys() == {"csv"}
    assert console.lines.count("CSV logging off: not enough memory (20480 bytes free)") == 1
    assert sum(1 for line in console.lines if line.startswith("Display off: not enough")) == 1

    # the heap comes back (a part shed, a spike gone): rows again, and it says so
    monkeypatch.undo()
    firmware.pipeline.decoder.__dict__.pop("decode", None)
    _telegrams(firmware, uart, clock, 2)
    assert st.counters.csv_rows == 2
    assert "CSV logging on again" in console.lines
    assert "off_csv" not in st.left_out


def test_a_memory_error_sheds_the_next_part_and_rows_go_on(monkeypatch):
    firmware, uart, clock, console, fs = build_with_memory_errors(monkeypatch, set())
    st = firmware.state
    real = firmware.pipeline.decoder.decode
    fail = [2]

    def sometimes(*args):
        if fail[0]:
            fail[0] -= 1
            raise MemoryError("memory allocation failed, allocating 64 bytes")
        return real(*args)

    monkeypatch.setattr(firmware.pipeline.decoder, "decode", sometimes)
    _telegrams(firmware, uart, clock, 6)
    assert st.counters.memory_errors == 2
    assert st.counters.csv_rows == 4  # the two lost ones were said (console, problem list)
    assert "graphite" not in firmware.parts and "mqtt" not in firmware.parts
    assert [
        getattr(s, "name", None) for s in firmware.sinks if s.name in ("graphite", "mqtt")
    ] == []
    assert "off_csv" not in st.left_out
    assert sum(1 for line in console.lines if line.startswith("memory: ")) == 1


def test_a_csv_row_that_runs_out_of_heap_reaches_the_app(monkeypatch):
    """CsvLog.write used to swallow MemoryError as a bug of the row (counted as a CSV error):
    the app never heard of it, shed nothing and said nothing."""
    firmware, uart, clock, console, fs = build_with_memory_errors(monkeypatch, set())
    st = firmware.state

    def no_heap(*_args):
        raise MemoryError("memory allocation failed, allocating 96 bytes")

    monkeypatch.setattr(firmware.csv.log, "_format", no_heap)
    _telegrams(firmware, uart, clock, 8)
    assert st.counters.decoded == 8 and st.counters.csv_rows == 0
    assert st.counters.memory_errors == 8 and st.counters.csv_lost == 8
    assert any(line.startswith("CSV logging off: not enough memory") for line in console.lines)


def test_too_little_heap_after_start_sheds_parts_before_the_first_telegram(monkeypatch):
    free = [4096]
    real_build = app_mod.build

    def build(hw, cfg, **kw):
        hw.mem_free = lambda: free[0]
        return real_build(hw, cfg, **kw)

    monkeypatch.setattr(app_mod, "build", build)
    firmware, uart, clock, console, fs = build_with_memory_errors(monkeypatch, set())
    st = firmware.state
    # everything but the display goes (it is where the words show), CSV logging stays
    assert set(firmware.parts) == {"csv", "display"}, firmware.parts
    assert st.left_out[-4:] == ["off_graphite", "off_mqtt", "off_setup", "off_usage"]
    _telegrams(firmware, uart, clock, 2)
    assert st.counters.csv_rows == 2


def test_usage_left_out_late_leaves_no_tariff_behind(monkeypatch):
    """The tariff is made before the usage sink's module loads: when that load hits MemoryError
    the tariff stayed in app.tariff - and on the board it holds the whole usage module (its
    class's globals), so leaving usage out freed nothing (the VM: 2.4 KiB free after it)."""
    firmware, uart, clock, console, _fs = build_with_memory_errors(
        monkeypatch, {"datalog.usagelog"}
    )
    assert "off_usage" in firmware.state.left_out
    assert firmware.usage is None and firmware.tariff is None and firmware.state.usage is None
