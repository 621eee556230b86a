"""One contract for outputs: an output that registers its status is shown everywhere.

A made-up output (a file none of the status code knows) registers a status entry with its own
problem texts and hint; the real loop runs it. The TFT status screen, ``/api/status`` (as the
web page reads it), the serial status line, the 'd' dump and the problem list all show it -
with no edit anywhere else. Then the real outputs against ``interfaces``.
"""

import inspect
import json

from test_ui import label_boxes  # the label walker of the screen tests

from sim.hardware import Console, Hardware, ManualClock, SimRadio
from smartmeter import app as app_mod
from smartmeter import config, interfaces
from smartmeter.state import Counters, problem_hint, problem_text
from smartmeter.ui.control import Ui
from smartmeter.web import api

PROBLEMS = (
    (
        "pigeon_lost",
        ("lost",),
        {"en": ("Pigeon lost", "Open the loft window"), "de": ("Taube weg", "Schlag oeffnen")},
    ),
)


class PigeonPost:
    """An output nobody else knows: sends one pigeon per reading, loses them on demand."""

    name = "pigeon"

    def __init__(self, state):
        self.status = state.add_sink(self.name, PROBLEMS)
        self.status.state = "pending"
        self.lose = False

    def on_reading(self, reading, epoch_utc, extras):
        self.status.queued += 1

    def poll(self, now_ms):
        if not self.status.queued:
            return
        if self.lose:
            self.status.state = "lost"
            self.status.failed += 1
            self.status.error = "hawk near 10.0.0.9"
            return
        self.status.sent += self.status.queued
        self.status.queued = 0
        self.status.state = "ok"
        self.status.error = ""


class TreeOnly:
    root_group = None
    brightness = 1.0
    auto_refresh = True

    def refresh(self):
        return True


def test_a_new_output_shows_on_every_status_surface():
    clock = ManualClock(start_epoch=1_717_228_800, ticks=1000)
    cfg = config.load(lambda _n: None, {"METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB"})
    hw = Hardware(radio=SimRadio(), clock=clock, console=Console(out=None, interactive=False))
    app = app_mod.build(hw, cfg, web=False)
    pigeon = PigeonPost(app.state)
    app.sinks.append(pigeon)
    from smartmeter.protocol.reading import Reading

    reading = Reading()
    reading.values = {"1-0:1.7.0": 100}
    pigeon.on_reading(reading, None, {})
    pigeon.lose = True
    app.loop_once()
    st = app.state
    assert "pigeon_lost" in st.problems()

    body = json.loads(api.status_json(st, "de"))
    assert body["sinks"]["pigeon"] == {
        "state": "lost",
        "error": "hawk near 10.0.0.9",
        "sent": 0,
        "failed": 1,
        "queued": 1,
        "dropped": 0,
    }
    assert {"code": "pigeon_lost", "text": "Taube weg"} in body["problems"]
    assert "pigeon lost 0/1" in app.status_line()
    assert "Taube weg" in app.status_line()  # UI_LANGUAGE (default de), as on the display
    assert problem_text("pigeon_lost", "en") == "Pigeon lost"
    assert problem_hint("pigeon_lost", "de") == "Schlag oeffnen"
    dump = app.status_dump()
    assert "pigeon lost sent 0 failed 1 queued 1 dropped 0" in dump
    assert "  last pigeon error: hawk near 10.0.0.9" in dump

    st.key_set = True  # only our problem (and the clock/no-signal ones) left
    st.wifi_connected = True
    st.clock_set = True
    st.latest_ticks = clock.ticks_ms()
    ui = Ui(TreeOnly(), None, st, language="en")
    ui.poll(clock.ticks_ms())
    shown = [box[0] for box in label_boxes(ui.view.root)]
    assert "Pigeon lost" in shown and "  Open the loft window" in shown, shown

    pigeon.lose = False
    app.loop_once()
    assert "pigeon_lost" not in st.problems()
    assert "pigeon ok 1/0" in app.status_line()
    assert json.loads(api.status_json(st))["sinks"]["pigeon"]["sent"] == 1


def test_counters_keep_only_the_pipeline():
    outputs = [n for n in Counters.NAMES if n.split("_")[0] in ("graphite", "mqtt", "influx")]
    assert outputs == []


def _methods(cls):
    return {
        name: inspect.signature(fn)
        for name, fn in vars(cls).items()
        if callable(fn) and not name.startswith("_")
    }


def test_the_real_parts_have_what_the_interfaces_list():
    from fakefs import FakeFS

    from sim import hardware as sim_hw
    from smartmeter.datalog.sd import RealFS
    from smartmeter.outputs.graphite import GraphiteSink
    from smartmeter.outputs.mqtt import MqttSink

    pairs = [
        (interfaces.Clock, sim_hw.ManualClock),
        (interfaces.Clock, sim_hw.SimClock),
        (interfaces.Uart, sim_hw.SimUart),
        (interfaces.LineMemory, sim_hw.LineMemory),
        (interfaces.Radio, sim_hw.SimRadio),
        (interfaces.Console, sim_hw.Console),
        (interfaces.Fs, RealFS),
        (interfaces.Fs, FakeFS),
        (interfaces.Output, GraphiteSink),
        (interfaces.Output, MqttSink),
    ]
    optional = {"sync_ntp", "wall_ms", "start_ap", "stop_ap", "start_mdns", "on_reading", "poll"}
    optional.add("sync")
    for iface, impl in pairs:
        for name, sig in _methods(iface).items():
            have = getattr(impl, name, None)
            if have is None and name in optional and iface is not interfaces.Output:
                continue
            assert callable(have), (impl, name)
            want = len(sig.parameters)
            got = inspect.signature(have).parameters
            required = [p for p in got.values() if p.default is inspect.Parameter.empty]
            assert len(required) <= want <= len(got) or any(
                p.kind is p.VAR_POSITIONAL for p in got.values()
            ), (impl, name, sig, inspect.signature(have))
