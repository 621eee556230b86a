"""Every layout the decoder knows, end to end through the real loop: the virtual meter sends its
real telegram format on its own line setting, and the CSV, Graphite and the state show only
what that meter sends (no zero voltages for a Wiener Netze meter, reactive values where sent).
"""

import time

import pytest
from servers import carbon_server

from sim.hardware import ManualClock
from sim.meter import LINE, PROFILES, layouts
from sim.run import Simulation
from smartmeter.datalog.csvlog import read_rows
from smartmeter.protocol import reading as r

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
AUTH = "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF"
START = 1_717_000_000  # 2024-05-29 16:26:40 UTC, summer time
# layout transport -> METER_TRANSPORT that fixes the meter's line (the search has its own test)
TRANSPORT = {"mbus": "mbus", "hdlc": "hdlc", "hdlc-wn": "hdlc", "gbt": "hdlc"}
TRANSPORT.update({"amis": "amis", "raw": "raw"})
UI = set(r.VOLTAGES + r.CURRENTS)
# what each layout must (and must not) put into the CSV header
HEADERS = {
    "wienernetze": ({"A+ Wh", "R+ varh", "R- varh", "Q+ var", "Q- var"}, {"U1 V", "I1 A", "PF"}),
    "amis": ({"A+ Wh", "A- Wh", "R+ T1 varh", "R- T1 varh", "Q+ var"}, {"U1 V", "I1 A", "PF"}),
    "t210dr": ({"A+ T1 Wh", "A- T2 Wh", "R+ varh", "Q- var"}, {"U1 V", "I1 A", "PF", "S VA"}),
    "e450-list": ({"U1 V", "I3 A", "R+ varh", "Q+ var", "S VA"}, {"PF"}),
    "netznoe": ({"U1 V", "I1 A", "PF", "S VA"}, {"Q+ var"}),
}


def _sim(tmp_path, layout, **extra):
    values = {"METER_KEY": KEY, "METER_AUTH_KEY": AUTH, "LOG_DIR": "/sd/logs"}
    values.update({"LOG_MIN_FREE_MB": 1, "CIRCUITPY_WIFI_SSID": "home", "PIN_METER_TX": "IO17"})
    values["METER_TRANSPORT"] = TRANSPORT[PROFILES[layout][0]]
    values.update(extra)
    return Simulation(
        values,
        data_dir=str(tmp_path / layout),
        layout=layout,
        clock=ManualClock(start_epoch=extra.pop("start", START)),
        display="none",
        quiet=True,
        web=False,
    )


def _run(sim, seconds, step_ms=250):
    for _ in range(int(seconds * 1000 / step_ms)):
        sim.step()
        sim.clock.advance(step_ms)
    for _ in range(3):
        sim.app.loop_once()


@pytest.mark.parametrize("layout", layouts())
def test_each_layout_end_to_end_sent_decoded_logged(tmp_path, layout):
    sim = _sim(tmp_path, layout)
    assert sim.app.state.line == "%d 8%s1" % (
        LINE[PROFILES[layout][0]][0],
        "NE"[LINE[PROFILES[layout][0]][1] == "even"],
    )
    _run(sim, 60)
    c = sim.app.state.counters
    print("\n%-11s %s" % (layout, sim.summary()))
    assert sim.sent >= 10
    assert c.decoded == sim.sent and c.csv_rows == sim.sent, sim.summary()
    latest = sim.app.state.latest
    assert latest.layout == layout
    storage = sim.app.storage
    name = storage.log_files()[-1]
    with open(str(tmp_path / layout / "sd" / "logs" / name), encoding="ascii") as f:
        header = set(f.readline().strip().split(";"))
    want, never = HEADERS.get(layout, (set(), set()))
    assert want <= header, (layout, want - header)
    assert not never & header, (layout, never & header)
    if not UI & set(latest.values):
        assert not {"U1 V", "I1 A", "PF berechnet", "S VA"} & header
    rows = list(read_rows(storage, name))
    assert len(rows) == sim.sent
    last = rows[-1][1]
    for key, value in latest.values.items():
        if isinstance(value, int) and not isinstance(value, bool):
            assert last[key] == value, (layout, key)


def test_meter_that_sends_less_reaches_graphite_without_voltages(tmp_path):
    with carbon_server(tmp_path) as carbon:
        host, port, _ = carbon
        now = int(time.time()) - 600  # carbon keeps points relative to now
        sim = _sim(tmp_path, "wienernetze", GRAPHITE_HOST=host, GRAPHITE_PORT=port, start=now)
        _run(sim, 60)
        rows = list(read_rows(sim.app.storage, sim.app.storage.log_files()[0]))
        expected = {
            "smartmeter.blindleistung.plus": {e: v[r.Q_PLUS] for e, v in rows},
            "smartmeter.blindenergie.minus": {e: v[r.R_MINUS] for e, v in rows},
            "smartmeter.wirkenergie.plus": {e: v[r.A_PLUS] for e, v in rows},
        }
        assert carbon.wait_points(expected, timeout=20) == {}
        metrics = carbon.metrics()
        assert not [m for m in metrics if "spannung" in m or "strom" in m or "cosphi" in m]
        assert not [m for m in metrics if "scheinleistung" in m or "leistungsfaktor" in m]


def test_old_and_new_tariff_headers_both_parse(tmp_path):
    """Files written before the tariff columns had labels carry the OBIS code as label: both
    forms are the parse schema of the tail repair, the Graphite backfill and the month download."""
    from smartmeter.datalog.sd import RealFS

    fs = RealFS(root=str(tmp_path))
    (tmp_path / "logs").mkdir()
    old = b"Zeit;UTC-Offset;A+ Wh;1-0:3.8.1;T degC\r\n29.05.2024 18:26:40;+02:00;1000;2500;\r\n"
    new = b"Zeit;UTC-Offset;A+ Wh;R+ T1 varh;T degC\r\n29.05.2024 18:26:45;+02:00;1001;2501;\r\n"
    (tmp_path / "logs" / "old.csv").write_bytes(old)
    (tmp_path / "logs" / "new.csv").write_bytes(new)
    (a,) = list(read_rows(fs, "/logs/old.csv"))
    (b,) = list(read_rows(fs, "/logs/new.csv"))
    assert a == (START, {r.A_PLUS: 1000, "1-0:3.8.1": 2500})
    assert b == (START + 5, {r.A_PLUS: 1001, "1-0:3.8.1": 2501})


def test_simulated_amis_time_is_written_like_the_real_meters():
    # ooe-amis-drvolcano-1: 2022-10-07 (a Friday) 21:05:02, summer time -> 42 05 B5 C7 2A 28
    from vectors import MORE_BY_ID

    from sim.telegrams import cp48

    plain = bytes.fromhex(MORE_BY_ID["ooe-amis-drvolcano-1"]["plaintext_hex"])
    assert plain[2:4] == b"\x06\x6d"
    assert cp48((2022, 10, 7, 21, 5, 2), True)[:5] == plain[4:9]
    assert cp48((2022, 10, 7, 21, 5, 2), False)[0] == 0x02  # winter: no flag in the seconds byte
