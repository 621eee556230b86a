"""End to end: the simulator (virtual meter + real app loop) against real servers."""

import time

from servers import carbon_server

from sim.hardware import ManualClock
from sim.run import Simulation
from smartmeter.datalog.csvlog import read_rows
from smartmeter.protocol import reading as r

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def _sim(tmp_path, **extra):
    values = {"METER_KEY": KEY, "LOG_DIR": "/sd/logs", "LOG_MIN_FREE_MB": 1}
    values["CIRCUITPY_WIFI_SSID"] = "home"
    values.update(extra)
    # Graphite keeps points relative to now: simulate the last few minutes
    clock = ManualClock(start_epoch=int(time.time()) - 600)
    return Simulation(
        values, data_dir=str(tmp_path / "data"), clock=clock, display="none", quiet=True, web=False
    )


def _run(sim, telegrams):
    for _ in range(telegrams):
        for _ in range(5):
            sim.step()
            sim.clock.advance(1000)


def test_simulator_feeds_carbon_every_telegram_lands_in_whisper(tmp_path):
    with carbon_server(tmp_path) as carbon:
        host, port, _ = carbon
        sim = _sim(tmp_path, GRAPHITE_HOST=host, GRAPHITE_PORT=port)
        _run(sim, 12)
        c = sim.app.state.counters
        assert sim.sent == 12 and c.decoded == 12 and c.csv_rows == 12
        rows = list(read_rows(sim.app.storage, sim.app.storage.log_files()[0]))
        expected = {
            "smartmeter.momentanleistung.plus": {e: v[r.P_PLUS] for e, v in rows},
            "smartmeter.momentanleistung.minus": {e: v[r.P_MINUS] for e, v in rows},
            "smartmeter.wirkenergie.plus": {e: v[r.A_PLUS] for e, v in rows},
            "smartmeter.spannung.L1": {e: v[r.U_L1] for e, v in rows},
            "smartmeter.strom.L3": {e: v[r.I_L3] for e, v in rows},
        }
        assert carbon.wait_points(expected, timeout=20) == {}
        assert sim.app.state.sinks["graphite"].state == "ok"
        assert sim.app.state.sinks["graphite"].failed == 0
