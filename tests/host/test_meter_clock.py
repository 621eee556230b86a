"""A meter whose clock is wrong still logs every telegram (issue 18 item 9).

Real Netz OÖ AMIS captures (``tests/vectors``: vzlogger's three telegrams of 2015-06-20) are
replayed through the simulator and the real loop. A meter time before 2020, or more than
``app.METER_CLOCK_TOLERANCE_S`` from a set board clock (NTP), gives way to the board's clock;
the row carries the flag column and the status says "Meter clock wrong". With no board clock
either, the meter's own time stamps the row (flagged): a row needs a time, and the meter's
is the only one there is.
"""

from vectors import MORE_BY_ID

from sim.hardware import ManualClock
from sim.run import Simulation
from smartmeter import app as app_mod
from smartmeter import state as state_mod
from smartmeter.datalog.csvformat import read_rows
from smartmeter.protocol import reading as r
from smartmeter.timeutil import epoch_from_fields

AMIS_2015 = ["ooe-amis-vzlogger-%d" % i for i in range(3)]
BOARD = epoch_from_fields((2026, 6, 25, 8, 0, 0))  # a fixed simulated date, summer time
METER_2015 = epoch_from_fields((2015, 6, 20, 21, 36, 2))  # 23:36:02+02:00


def _replay(tmp_path, ids, board_epoch, **extra):
    stream = b"".join(bytes.fromhex(MORE_BY_ID[i]["raw_hex"]) for i in ids)
    capture = tmp_path / "capture.hex"
    capture.write_text(stream.hex(" ") + "\n")
    values = {
        "METER_KEY": MORE_BY_ID[ids[0]]["key"],
        "METER_TRANSPORT": "amis",
        "PIN_METER_TX": "IO17",
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "CSV_DIALECT": "international",
    }
    values.update(extra)
    sim = Simulation(
        values,
        data_dir=str(tmp_path / "data"),
        replay=str(capture),
        clock=ManualClock(start_epoch=board_epoch),
        display="none",
        quiet=True,
        web=False,
    )
    for _ in range(len(ids) * 6):
        sim.step()
        sim.clock.advance(1000)
    return sim


def _rows(sim):
    storage = sim.app.storage
    out = []
    for name in storage.log_files():
        out.extend(read_rows(storage, name))
    return out


def _header(sim):
    storage = sim.app.storage
    f = storage.fs.open(storage.path(storage.log_files()[-1]), "rb")
    try:
        return f.readline().decode().strip().split(",")
    finally:
        f.close()


def test_amis_meter_with_a_2015_clock_logs_every_telegram_with_the_board_time(tmp_path):
    sim = _replay(tmp_path, AMIS_2015, BOARD)
    c = sim.app.state.counters
    assert sim.sent == 3 and c.decoded == 3
    assert c.csv_no_time == 0
    assert c.csv_rows == 3
    rows = _rows(sim)
    assert len(rows) == 3
    for epoch, values in rows:
        assert BOARD <= epoch <= BOARD + 30  # the board's clock, not 2015
        assert values[r.P_PLUS] in (435, 437, 439)
        assert values["meter_clock"] == 1  # the flag: time from the board clock
    assert "Meter clock wrong" in _header(sim)
    st = sim.app.state
    METER_CLOCK = state_mod.METER_CLOCK
    problem_text = state_mod.problem_text
    problem_hint = state_mod.problem_hint
    assert METER_CLOCK in st.problems()
    assert c.meter_clock_wrong == 3
    assert problem_text(METER_CLOCK, "en") == "Meter clock wrong"
    assert problem_text(METER_CLOCK, "de") == "Zaehleruhr falsch"
    for lang in ("de", "en"):
        assert 0 < len(problem_text(METER_CLOCK, lang)) <= 26
        assert 0 < len(problem_hint(METER_CLOCK, lang)) <= 26
    assert st.latest_epoch >= BOARD


def test_without_a_board_clock_the_wrong_meter_time_still_stamps_a_flagged_row(tmp_path):
    sim = _replay(tmp_path, AMIS_2015, None)
    c = sim.app.state.counters
    assert c.decoded == 3 and c.csv_no_time == 0 and c.csv_rows == 3
    rows = _rows(sim)
    assert [e for e, _ in rows] == [METER_2015, METER_2015 + 1, METER_2015 + 2]
    assert all(v["meter_clock"] == 2 for _, v in rows)  # the meter's own (wrong) time
    assert sim.app.storage.log_files() == ["2015-06-20.csv"]
    assert state_mod.METER_CLOCK in sim.app.state.problems()


def test_a_meter_far_from_the_set_board_clock_gives_way_to_it(tmp_path):
    # ooe-amis-drvolcano-1 says 2022-10-07: a valid year, but years from the NTP time
    sim = _replay(tmp_path, ["ooe-amis-drvolcano-1"], BOARD)
    rows = _rows(sim)
    assert len(rows) == 1 and BOARD <= rows[0][0] <= BOARD + 30
    assert rows[0][1]["meter_clock"] == 1


def test_a_meter_near_the_board_clock_keeps_its_own_time_and_no_flag(tmp_path):
    # the board clock is set just within the tolerance of the meter: nothing is wrong
    sim = _replay(tmp_path, ["ooe-amis-drvolcano-1"], None)
    meter = sim.app.state.latest_epoch
    assert meter is not None
    (tmp_path / "b").mkdir()
    sim2 = _replay(
        tmp_path / "b", ["ooe-amis-drvolcano-1"], meter + app_mod.METER_CLOCK_TOLERANCE_S - 60
    )
    rows = _rows(sim2)
    assert [e for e, _ in rows] == [meter]
    assert rows[0][1].get("meter_clock") is None
    assert "Meter clock wrong" not in _header(sim2)
    assert state_mod.METER_CLOCK not in sim2.app.state.problems()
