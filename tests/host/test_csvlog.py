"""CSV day files: format, columns, time handling, fault recovery and 1000 power cuts.

Everything runs against tests/host/fakefs.FakeFS (real durability and fault semantics) except
one test that writes through RealFS into a temporary folder.
"""

import random
import time

import pytest
from fakefs import EIO, ENOSPC, FakeFS, PowerCut

import smartmeter.protocol.reading as R
from smartmeter.datalog.csvformat import LINE_MAX, ROWS_BUF, _parse_header, _parse_line
from smartmeter.datalog.csvlog import CsvLog, read_rows
from smartmeter.datalog.sd import RealFS, Storage
from smartmeter.protocol.reading import Reading
from smartmeter.state import State
from smartmeter.timeutil import days_from_civil

LOG = "/sd/logs"
EXTRAS = {"temperature": 23.45, "humidity": 45.67, "rssi": -67}


class Clock:
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms & 0x1FFFFFFF


def kaifa(t, off=60, a_plus=1340436, **over):
    """The Netz NOe Kaifa test telegram of the original firmware (04.02.2022 16:43:20)."""
    r = Reading()
    r.meter_time = t
    r.utc_offset = off
    r.values = {
        R.A_PLUS: a_plus,
        R.A_MINUS: 0,
        R.P_PLUS: 1055,
        R.P_MINUS: 0,
        R.U_L1: 234.5,
        R.U_L2: 233.4,
        R.U_L3: 233.7,
        R.I_L1: 3.83,
        R.I_L2: 1.69,
        R.I_L3: 0.92,
        R.POWER_FACTOR: 0.968,
        R.METER_NUMBER: "181220002177",
    }
    r.values.update(over)
    r.derive()
    return r


def single_phase(t, off=120):
    """A VKW Honeywell-like meter: L1 only, +/-A, +/-R, no power factor."""
    r = Reading()
    r.meter_time = t
    r.utc_offset = off
    r.values = {
        R.A_PLUS: 5000123,
        R.A_MINUS: 17,
        R.R_PLUS: 900,
        R.R_MINUS: 12,
        R.P_PLUS: 230,
        R.P_MINUS: 0,
        R.U_L1: 229.9,
        R.I_L1: 1.25,
    }
    return r


def make(fs=None, dialect="excel-de", offset=0, clock=None, min_free_mb=0, **fs_kw):
    if fs is None:
        fs = FakeFS(**fs_kw)
        fs.mkdir("/sd")
    st = Storage(fs, mount=fs.mount, log_dir=LOG, clock=clock or Clock(), min_free_mb=min_free_mb)
    log = CsvLog(st, dialect=dialect, energy_offset_wh=offset)
    log.start()
    return fs, st, log


def step(t, seconds):
    """Local time tuple ``t`` plus ``seconds`` (naive, no DST)."""
    from smartmeter.timeutil import civil_from_days

    n = days_from_civil(t[0], t[1], t[2]) * 86400 + t[3] * 3600 + t[4] * 60 + t[5] + seconds
    d, s = divmod(n, 86400)
    return civil_from_days(d) + (s // 3600, s // 60 % 60, s % 60)


def lines_of(fs, path):
    return fs.content(path).split(b"\r\n")


def assert_parses(data):
    """The strict check: a header, then only complete CRLF rows with the header's field count,
    or whitespace-only lines; the file ends with a line end."""
    assert data.endswith(b"\n"), data[-40:]
    raw = data.split(b"\n")[:-1]
    parsed = _parse_header(raw[0].rstrip(b"\r"))
    assert parsed is not None, raw[0]
    spec, sep = parsed
    rows = []
    for line in raw[1:]:
        if not line.strip():
            continue
        assert line.endswith(b"\r"), line
        row = _parse_line(line.strip(), spec, sep)
        assert row is not None, line
        assert line.count(sep.encode()) == len(spec) + 1
        rows.append(row)
    return rows


# -- format ----------------------------------------------------------------------------------


def test_excel_de_row_matches_original_values_exactly():
    fs, st, log = make(offset=9520525)
    assert log.write(kaifa((2022, 2, 4, 16, 43, 20)), None, EXTRAS)
    lines = lines_of(fs, LOG + "/2022-02-04.csv")
    assert lines[0] == (
        b"Zeit;UTC-Offset;A+ Wh;A- Wh;P+ W;P- W;U1 V;U2 V;U3 V;I1 A;I2 A;I3 A;PF;"
        b"PF berechnet;S VA;T degC;RH %;RSSI dBm"
    )
    # Same values as the original's example line (A+ with the offset: 10 860 961 Wh), plus the
    # UTC offset, the derived PF (P / S = 1055 / 1508) and S.
    assert lines[1] == (
        b"04.02.2022 16:43:20;+01:00;10860961;0;1055;0;234,5;233,4;233,7;3,83;1,69;0,92;0,968;"
        b"0,700;1508;23,45;45,67;-67"
    )
    assert lines[2] == b""
    assert log.rows == 1 and log.lost == 0


def test_international_dialect_and_read_back():
    fs, st, log = make(dialect="international", offset=100)
    assert log.write(kaifa((2022, 2, 4, 16, 43, 20)), None, {"rssi": -70})
    lines = lines_of(fs, LOG + "/2022-02-04.csv")
    assert lines[0].startswith(b"Time,UTC offset,A+ Wh,")
    assert lines[1] == (
        b"2022-02-04 16:43:20,+01:00,1340536,0,1055,0,234.5,233.4,233.7,3.83,1.69,0.92,0.968,"
        b"0.700,1508,,,-70"
    )
    ((epoch, values),) = list(read_rows(st, "2022-02-04.csv"))
    assert epoch == 1643989400  # 15:43:20 UTC
    assert values[R.A_PLUS] == 1340536 and values[R.U_L2] == 233.4 and values["rssi"] == -70
    assert "temperature" not in values  # empty field = absent


def test_only_the_values_the_meter_sends_get_columns():
    fs, st, log = make()
    assert log.write(single_phase((2023, 10, 13, 9, 52, 30)), None, None)
    header, row = lines_of(fs, LOG + "/2023-10-13.csv")[:2]
    assert header == (
        b"Zeit;UTC-Offset;A+ Wh;A- Wh;R+ varh;R- varh;P+ W;P- W;U1 V;I1 A;PF berechnet;S VA;"
        b"T degC;RH %;RSSI dBm"
    )
    assert b"U2" not in header and b"PF;" not in header
    assert row == b"13.10.2023 09:52:30;+02:00;5000123;17;900;12;230;0;229,9;1,25;0,800;287;;;"


def test_floats_without_artefacts_and_no_non_numeric_fields():
    fs, st, log = make(dialect="international")
    r = kaifa((2024, 5, 1, 12, 0, 0), **{R.U_L1: 0.1 + 0.2 + 230, R.I_L1: float("nan")})
    r.values[R.I_L2] = float("inf")
    r.values["1-0:14.7.0"] = 50.0 + 1e-12  # an unknown numeric value: its own column
    assert log.write(r, None, {"temperature": 21.005, "humidity": None, "rssi": -55})
    header, row = lines_of(fs, LOG + "/2024-05-01.csv")[:2]
    assert header.split(b",")[13] == b"1-0:14.7.0"
    fields = row.split(b",")
    assert fields[6] == b"230.3"  # not 230.29999999999998
    assert fields[9] == b"" and fields[10] == b""  # NaN and inf are never written
    assert fields[13] == b"50.000"
    assert b"nan" not in row.lower() and b"inf" not in row.lower()
    assert_parses(fs.content(LOG + "/2024-05-01.csv"))


def test_row_formatting_cost(capsys):
    fs, st, log = make()
    r = kaifa((2024, 5, 1, 12, 0, 0))
    log.write(r, None, EXTRAS)
    spec_t = (2024, 5, 1, 12, 0, 1)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        log._format(spec_t, 120, r.values, r.derived, EXTRAS)
    fmt_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for i in range(n):
        log.write(kaifa(step((2024, 5, 1, 12, 0, 1), i)), None, EXTRAS)
    write_us = (time.perf_counter() - t0) / n * 1e6
    with capsys.disabled():
        print(
            "\n[csvlog] format %.1f us/row, write+flush+sync (fake fs) %.1f us/row"
            % (fmt_us, write_us)
        )
    assert fmt_us < 500
    assert log.rows == n + 1


# -- time ----------------------------------------------------------------------------------


def test_no_row_without_a_known_time():
    fs, st, log = make()
    r = kaifa(None)
    assert not log.write(r, None, EXTRAS)  # no meter time, no clock
    assert not log.write(r, 946684800, EXTRAS)  # RTC at 2000-01-01: not set
    assert not log.write(kaifa((2000, 1, 1, 0, 0, 5)), None, EXTRAS)  # meter clock not set
    assert not log.write(kaifa((2024, 13, 1, 0, 0, 5)), None, EXTRAS)  # impossible date
    assert log.no_time == 4 and log.rows == 0 and log.lost == 0
    assert fs.listdir(LOG) == []
    # With a set clock the row is stamped from it, in local time with the EU offset.
    assert log.write(r, 1719835200, EXTRAS)  # 2024-07-01 12:00:00 UTC
    assert fs.listdir(LOG) == ["2024-07-01.csv"]
    assert lines_of(fs, LOG + "/2024-07-01.csv")[1].startswith(b"01.07.2024 14:00:00;+02:00;")


def test_offset_inferred_when_the_meter_sends_none():
    fs, st, log = make()
    r = kaifa((2024, 1, 15, 8, 0, 0), off=None)
    assert log.write(r, 1705302000 + 3, EXTRAS)  # clock 3 s off: still +01:00
    r = kaifa((2024, 7, 15, 8, 0, 0), off=None)
    assert log.write(r, None, EXTRAS)  # no clock: EU rule -> summer time
    assert lines_of(fs, LOG + "/2024-01-15.csv")[1][:27] == b"15.01.2024 08:00:00;+01:00;"
    assert lines_of(fs, LOG + "/2024-07-15.csv")[1][:27] == b"15.07.2024 08:00:00;+02:00;"


def test_midnight_starts_the_next_days_file_with_its_own_header():
    fs, st, log = make()
    t = (2024, 6, 30, 23, 59, 50)
    for i in range(4):
        assert log.write(kaifa(step(t, 5 * i), off=120), None, EXTRAS)
    a = lines_of(fs, LOG + "/2024-06-30.csv")
    b = lines_of(fs, LOG + "/2024-07-01.csv")
    assert [x[:19] for x in a[1:-1]] == [b"30.06.2024 23:59:50", b"30.06.2024 23:59:55"]
    assert [x[:19] for x in b[1:-1]] == [b"01.07.2024 00:00:00", b"01.07.2024 00:00:05"]
    assert a[0] == b[0] and b.count(b[0]) == 1
    assert [name for name, _ in st.list_days()] == ["2024-07-01.csv", "2024-06-30.csv"]


@pytest.mark.parametrize(
    "start, off, switch",
    [
        ((2024, 3, 31, 1, 59, 50), 60, ((2024, 3, 31, 3, 0, 0), 120)),  # 02:00 -> 03:00
        ((2024, 10, 27, 2, 59, 50), 120, ((2024, 10, 27, 2, 0, 0), 60)),  # 03:00 -> 02:00
    ],
)
def test_dst_change_stays_in_one_file_and_unambiguous(start, off, switch):
    fs, st, log = make()
    new_t, new_off = switch
    times = [(start, off), (step(start, 5), off), (new_t, new_off), (step(new_t, 5), new_off)]
    for t, o in times:
        assert log.write(kaifa(t, off=o), None, EXTRAS)
    assert fs.listdir(LOG) == ["%04d-%02d-%02d.csv" % start[:3]]
    epochs = [e for e, _ in read_rows(st, fs.listdir(LOG)[0])]
    assert [b - a for a, b in zip(epochs, epochs[1:])] == [5, 5, 5]
    offsets = [x.split(b";")[1] for x in lines_of(fs, LOG + "/" + fs.listdir(LOG)[0])[1:-1]]
    assert offsets == [b"+%02d:00" % (off // 60)] * 2 + [b"+%02d:00" % (switch[1] // 60)] * 2


def test_clock_jumping_back_and_forth_never_reorders_a_file():
    fs, st, log = make()
    seq = [
        (2024, 5, 2, 10, 0, 0),
        (2024, 5, 2, 15, 0, 0),  # meter clock wrong: jumps 5 h ahead
        (2024, 5, 2, 10, 0, 10),  # corrected back: new part file of the same date
        (2024, 5, 3, 9, 0, 0),  # jumps a day ahead
        (2024, 5, 2, 10, 0, 20),  # and back: into the 2024-05-02 file again (still ordered)
        (2024, 5, 2, 10, 0, 20),  # the same second twice is not "backwards"
    ]
    for i, t in enumerate(seq):
        assert log.write(kaifa(t, off=120, a_plus=1000 + i), None, EXTRAS)
    names = sorted(fs.listdir(LOG))
    assert names == ["2024-05-02-2.csv", "2024-05-02.csv", "2024-05-03.csv"]
    seen = []
    for name in names:
        rows = list(read_rows(st, name))
        epochs = [e for e, _ in rows]
        assert epochs == sorted(epochs), name
        seen += [v[R.A_PLUS] for _, v in rows]
    assert sorted(seen) == list(range(1000, 1006))  # every row exactly once
    assert log.new_parts == 1
    # After a restart the log appends to the newest part and keeps it ordered.
    fs, st, log = make(fs)
    assert log.write(kaifa((2024, 5, 2, 10, 0, 30), off=120, a_plus=1006), None, EXTRAS)
    assert log.path == LOG + "/2024-05-02-2.csv"
    assert [v[R.A_PLUS] for _, v in read_rows(st, "2024-05-02-2.csv")] == [1002, 1004, 1005, 1006]


def test_other_meter_starts_a_new_file_and_restart_appends_without_second_header():
    fs, st, log = make()
    assert log.write(kaifa((2024, 5, 2, 10, 0, 0)), None, EXTRAS)
    assert log.write(single_phase((2024, 5, 2, 10, 0, 5), off=60), None, EXTRAS)  # has R+/R-
    r = single_phase((2024, 5, 2, 10, 0, 10), off=60)
    del r.values[R.R_MINUS]  # a value missing once: an empty field, not a new file
    assert log.write(r, None, EXTRAS)
    assert sorted(fs.listdir(LOG)) == ["2024-05-02-2.csv", "2024-05-02.csv"]
    fs, st, log = make(fs)
    assert log.write(single_phase((2024, 5, 2, 10, 0, 15), off=60), None, EXTRAS)
    data = fs.content(LOG + "/2024-05-02-2.csv")
    assert data.count(b"Zeit;") == 1
    rows = assert_parses(data)
    assert len(rows) == 3 and R.R_MINUS not in rows[1][1] and rows[2][1][R.R_MINUS] == 12
    assert len(assert_parses(fs.content(LOG + "/2024-05-02.csv"))) == 1


# -- faults ------------------------------------------------------------------------------------


def test_enospc_at_byte_n_leaves_no_partial_row_and_resumes_when_space_is_freed():
    fs, st, log = make(capacity=400)
    t = (2024, 5, 2, 10, 0, 0)
    results = [log.write(kaifa(step(t, 5 * i), a_plus=i), None, EXTRAS) for i in range(4)]
    assert results == [True, True, False, False]  # header 124 + rows of 117 bytes: 2 fit
    assert st.state == "full"
    assert log.errors == 1 and log.lost == 2  # one failed write, one paused row
    data = fs.content(LOG + "/2024-05-02.csv")
    rows = assert_parses(data)
    assert [v[R.A_PLUS] for _, v in rows] == [0, 1]  # the partial third row was blanked
    assert fs.free() < 100
    fs.capacity = 64 * 1024  # space freed (another card, or files deleted on a PC)
    assert log.write(kaifa(step(t, 20), a_plus=4), None, EXTRAS)
    assert st.state == "ok"
    rows = assert_parses(fs.content(LOG + "/2024-05-02.csv"))
    assert [v[R.A_PLUS] for _, v in rows] == [0, 1, 4]


def test_enospc_retention_frees_space_and_logging_resumes():
    fs = FakeFS(capacity=200_000)
    fs.mkdir("/sd")
    fs.mkdir(LOG)
    for day in range(1, 4):
        fs.add_file(LOG + "/2024-04-%02d.csv" % day, b"x" * 60_000)
    fs, st, log = make(fs, min_free_mb=50_000 / 1048576)
    assert st.deleted == 1  # start-up retention: 20 000 free -> delete 04-01
    t = (2024, 5, 2, 10, 0, 0)
    fs.inject("write", ENOSPC, after_bytes=10)
    assert not log.write(kaifa(t), None, EXTRAS)
    assert st.state == "full"
    assert log.write(kaifa(step(t, 5)), None, EXTRAS)  # within one cycle
    assert st.state == "ok"
    assert len(assert_parses(fs.content(LOG + "/2024-05-02.csv"))) == 1


def test_eio_mid_row_repairs_and_remounts_with_backoff():
    clock = Clock()
    fs, st, log = make(clock=clock)
    t = (2024, 5, 2, 10, 0, 0)
    assert log.write(kaifa(t, a_plus=0), None, EXTRAS)
    fs.inject("write", EIO, after_bytes=40)
    assert not log.write(kaifa(step(t, 5), a_plus=1), None, EXTRAS)
    assert st.state == "error" and log.errors == 1
    assert_parses(fs.content(LOG + "/2024-05-02.csv"))  # repaired at once: the card answers
    mounts = fs.calls.get("mount", 0)
    clock.ms += 1000
    assert not log.write(kaifa(step(t, 10), a_plus=2), None, EXTRAS)  # backing off
    assert fs.calls.get("mount", 0) == mounts
    clock.ms += 1000
    assert log.write(kaifa(step(t, 15), a_plus=3), None, EXTRAS)  # 2 s: remounted
    assert st.state == "ok" and st.remounts == 1
    rows = assert_parses(fs.content(LOG + "/2024-05-02.csv"))
    assert [v[R.A_PLUS] for _, v in rows] == [0, 3]
    assert log.lost == 2 and log.rows == 2


def test_flush_failure_after_a_complete_write_is_not_a_lost_row_nor_a_duplicate():
    clock = Clock()
    fs, st, log = make(clock=clock, durable_on="flush")
    t = (2024, 5, 2, 10, 0, 0)
    assert log.write(kaifa(t, a_plus=0), None, EXTRAS)
    fs.inject("sync", EIO)
    assert not log.write(kaifa(step(t, 5), a_plus=1), None, EXTRAS)
    clock.ms += 2000
    assert log.write(kaifa(step(t, 10), a_plus=2), None, EXTRAS)
    rows = assert_parses(fs.content(LOG + "/2024-05-02.csv"))
    assert [v[R.A_PLUS] for _, v in rows] == [0, 1, 2]
    assert log.rows == 3 and log.lost == 0 and log.errors == 1


def test_card_removed_and_reinserted():
    clock = Clock()
    fs, st, log = make(clock=clock)
    rng = random.Random(7)
    t = (2024, 5, 2, 10, 0, 0)
    written = []
    attempts = []
    i = 0
    for tick in range(0, 140_000, 500):  # a telegram every 0.5 s of fake time
        clock.ms = tick
        if tick == 3000:
            fs.remove_card(rng)
        if tick == 100_000:
            fs.insert_card()
        before = fs.calls.get("mount", 0)
        if log.write(kaifa(step(t, i), a_plus=i), None, EXTRAS):
            written.append(i)
        if fs.calls.get("mount", 0) != before:
            attempts.append(tick)
        if 3000 < tick < 100_000:
            assert st.state in ("missing", "error")
        i += 1
    # Backoff: 2 s doubling, then at most one attempt per 30 s.
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[:4] == [4000, 8000, 16000, 30000]
    assert all(g <= 30000 for g in gaps)
    assert attempts[0] - 3000 == 2000
    assert st.state == "ok" and st.remounts == 1
    assert attempts[-1] <= 100_000 + 30_000
    rows = [v[R.A_PLUS] for _, v in read_rows(st, "2024-05-02.csv")]
    assert rows == written  # nothing twice, nothing torn, order kept
    assert written[-1] == i - 1 and log.lost == i - len(written)
    assert_parses(fs.content(LOG + "/2024-05-02.csv"))


def test_missing_card_at_boot_is_not_a_crash():
    fs = FakeFS()
    fs.mkdir("/sd")
    fs.remove_card()
    fs2, st, log = make(fs)
    assert st.state == "missing"
    assert not log.write(kaifa((2024, 5, 2, 10, 0, 0)), None, EXTRAS)
    assert log.lost == 1 and log.errors == 0


def test_torn_header_file_is_replaced_and_garbage_tail_cut():
    fs = FakeFS()
    fs.mkdir("/sd")
    fs.mkdir(LOG)
    fs.add_file(LOG + "/2024-05-02.csv", b"Zeit;UTC-Off")  # power cut inside the header
    fs, st, log = make(fs)
    assert LOG + "/2024-05-02.csv" not in fs.files
    assert log.write(kaifa((2024, 5, 2, 10, 0, 0), a_plus=1), None, EXTRAS)
    good = fs.content(LOG + "/2024-05-02.csv")
    # FAT grew the file but the data never arrived: NUL bytes, even past a line end.
    fs.add_file(LOG + "/2024-05-02.csv", good + b"\0" * 100 + b"\n" + b"\0" * 700)
    fs, st, log = make(fs)
    assert log.repairs == 1
    assert log.write(kaifa((2024, 5, 2, 10, 0, 5), a_plus=2), None, EXTRAS)
    rows = assert_parses(fs.content(LOG + "/2024-05-02.csv"))
    assert [v[R.A_PLUS] for _, v in rows] == [1, 2]
    assert max(len(x) for x in fs.content(LOG + "/2024-05-02.csv").split(b"\n")) <= 124


def test_truncate_is_used_where_the_platform_has_it():
    fs, st, log = make(can_truncate=True)
    assert log.write(kaifa((2024, 5, 2, 10, 0, 0)), None, EXTRAS)
    good = fs.content(LOG + "/2024-05-02.csv")
    fs.add_file(LOG + "/2024-05-02.csv", good + b"02.05.2024 10:00:05;+01:00;13404")
    fs, st, log = make(fs, can_truncate=True)
    assert fs.content(LOG + "/2024-05-02.csv") == good


def test_read_rows_resumes_from_an_offset_in_bounded_slices():
    fs, st, log = make()
    t = (2024, 5, 2, 0, 0, 0)
    for i in range(300):
        log.write(kaifa(step(t, 5 * i), a_plus=i), None, EXTRAS)
    rows = list(read_rows(st, "2024-05-02.csv", with_offset=True))
    assert [v[R.A_PLUS] for _, v, _ in rows] == list(range(300))
    resume = rows[199][2]
    rest = list(read_rows(fs, LOG + "/2024-05-02.csv", start_offset=resume))
    assert [v[R.A_PLUS] for _, v in rest] == list(range(200, 300))
    reads = fs.calls["read"]
    list(read_rows(st, "2024-05-02.csv"))
    size = len(fs.content(LOG + "/2024-05-02.csv"))
    assert fs.calls["read"] - reads >= size // 1024  # read in ~1 KiB slices, not at once


def test_real_filesystem_round_trip(tmp_path):
    (tmp_path / "logs").mkdir()
    st = Storage(RealFS(), log_dir=str(tmp_path / "logs"), clock=Clock(), min_free_mb=0)
    log = CsvLog(st)
    log.start()
    assert st.state == "ok" and st.free_bytes > 0 and st.total_bytes >= st.free_bytes
    assert log.write(kaifa((2024, 5, 2, 10, 0, 0)), None, EXTRAS)
    path = tmp_path / "logs" / "2024-05-02.csv"
    path.write_bytes(path.read_bytes() + b"02.05.2024 10:0")  # torn tail
    log2 = CsvLog(st)
    log2.start()
    assert log2.write(kaifa((2024, 5, 2, 10, 0, 5)), None, EXTRAS)
    assert len(assert_parses(path.read_bytes())) == 2  # truncated (CPython has os.truncate)
    assert st.list_days() == [("2024-05-02.csv", path.stat().st_size)]


# -- 1000 power cuts -------------------------------------------------------------------------


def test_1000_power_cuts_at_random_byte_offsets():
    rng = random.Random(20240331)
    start = (2024, 3, 30, 23, 59, 45)  # crosses midnight, so cuts also hit new files' headers
    torn_rows = 0
    for trial in range(1000):
        fs = FakeFS(durable_on=rng.choice(("sync", "flush")), can_truncate=rng.random() < 0.2)
        fs.mkdir("/sd")
        _, st, log = make(fs)
        synced = []
        seq = trial * 100
        n_before = rng.randint(0, 4)
        for _ in range(n_before):
            assert log.write(kaifa(step(start, 5 * (seq % 100)), a_plus=seq), None, EXTRAS)
            synced.append(seq)
            seq += 1
        fs.cut_at = fs.bytes_written + rng.randint(1, 400)
        inflight = None
        try:
            for _ in range(6):
                inflight = seq
                assert log.write(kaifa(step(start, 5 * (seq % 100)), a_plus=seq), None, EXTRAS)
                synced.append(seq)
                seq += 1
            inflight = None
        except PowerCut:
            pass
        durable = {p: fs.durable(p) for p in fs.files}
        fs.power_cut(rng, garbage=rng.random() < 0.2)
        _, st, log = make(fs)  # reboot: start() repairs
        found = []
        for name, _size in reversed(st.list_days()):
            data = fs.content(LOG + "/" + name)
            rows = assert_parses(data)
            found += [v[R.A_PLUS] for _, v in rows]
            before = durable.get(LOG + "/" + name, b"").split(b"\n")[:-1]
            for line in (x for x in before if x.strip()):
                assert line + b"\n" in data  # every durable line survived
        assert found[: len(synced)] == synced  # every synced row, in order, once
        assert found[len(synced) :] in ([], [inflight])  # at most the last row lost
        torn_rows += found[len(synced) :] == []
        # and logging simply continues
        assert log.write(kaifa(step(start, 5 * (seq % 100) + 1), a_plus=seq), None, EXTRAS)
        assert_parses(fs.content(log.path))
    assert 0 < torn_rows < 1000  # both outcomes happened


def test_publish_into_the_app_state_and_disabled_card():
    from smartmeter.state import SD_FULL, State

    fs, st, log = make(capacity=300)
    log.write(kaifa((2024, 5, 2, 10, 0, 0)), None, EXTRAS)
    log.write(kaifa((2024, 5, 2, 10, 0, 5)), None, EXTRAS)
    state = State()
    log.publish(state)
    assert state.sd_state == "full" and SD_FULL in state.problems()
    assert state.sd_free == st.free_bytes and state.sd_total == st.total_bytes
    c = state.counters
    assert (c.csv_rows, c.csv_errors, c.csv_lost) == (1, 1, 1)
    off = CsvLog(Storage(None))
    assert off.start() == 0
    assert not off.write(kaifa((2024, 5, 2, 10, 0, 0)), None, EXTRAS)
    assert off.lost == 0 and off.storage.state == "disabled"


# -- files a spreadsheet saved, files we cannot read (issue 18.8) ------------------------------


def _spreadsheet_day(day, rows=40, seconds=False):
    """A day file as a spreadsheet saves ours: our header, times without seconds."""
    lines = [b"Zeit;UTC-Offset;A+ Wh;P+ W"]
    for i in range(rows):
        t = "%02d.05.2024 %02d:%02d" % (day, 10 + i // 60, i % 60)
        if seconds:
            t += ":00"
        lines.append(("%s;+02:00;%d;%d" % (t, 1000 + i, 200 + i)).encode())
    return b"\r\n".join(lines) + b"\r\n"


def test_boots_never_cut_complete_lines_of_a_spreadsheet_saved_file():
    """Three day files whose times have no seconds lost 8 lines per boot (41 -> 33 -> 25 -> 17).
    Complete lines are never cut: such rows are read (seconds 0), and a boot changes nothing."""
    fs = FakeFS()
    fs.mkdir("/sd")
    fs.mkdir(LOG)
    days = {LOG + "/2024-05-%02d.csv" % d: _spreadsheet_day(d) for d in (1, 2, 3)}
    for path, data in days.items():
        fs.add_file(path, data)
    counts = []
    for _boot in range(3):
        fs, st, log = make(fs)
        counts.append([sum(1 for x in fs.content(p).split(b"\n") if x.strip()) for p in days])
    print("\nlines per file after each of 3 boots: %s" % counts)
    for path, data in days.items():
        assert fs.content(path) == data
    assert log.repairs == 0
    rows = list(read_rows(st, "2024-05-03.csv"))
    assert len(rows) == 40 and rows[0][1] == {R.A_PLUS: 1000, R.P_PLUS: 200}
    assert rows[1][0] - rows[0][0] == 60
    assert log.write(kaifa((2024, 5, 3, 12, 0, 0), off=120), None, EXTRAS)  # logging goes on
    assert fs.content(LOG + "/2024-05-03.csv") == days[LOG + "/2024-05-03.csv"]


def test_a_file_we_cannot_read_is_left_as_it_is_and_reported():
    fs = FakeFS()
    fs.mkdir("/sd")
    fs.mkdir(LOG)
    # a spreadsheet added a column to every row: nothing in it parses with our header
    data = b"Zeit;UTC-Offset;A+ Wh\r\n" + b"02.05.2024 10:00:00;+01:00;5;my note\r\n" * 20
    torn = data + b"02.05.2024 10:0"  # and a partial last line: still not ours to cut
    fs.add_file(LOG + "/2024-05-02.csv", torn)
    for _boot in range(2):
        fs, st, log = make(fs)
        assert fs.content(LOG + "/2024-05-02.csv") == torn
    assert "2024-05-02.csv" in log.notice
    state = State()
    log.publish(state)
    assert "2024-05-02.csv" in state.last_errors["csv"]
    assert log.write(kaifa((2024, 5, 2, 10, 0, 5)), None, EXTRAS)  # rows go to a new part
    assert fs.content(LOG + "/2024-05-02.csv") == torn
    assert len(assert_parses(fs.content(LOG + "/2024-05-02-2.csv"))) == 1


def test_only_a_partial_last_line_is_cut():
    fs, st, log = make()
    for i in range(3):
        assert log.write(kaifa((2024, 5, 2, 10, 0, 5 * i), a_plus=i), None, EXTRAS)
    good = fs.content(LOG + "/2024-05-02.csv")
    fs.add_file(LOG + "/2024-05-02.csv", good + b"02.05.2024 10:00:15;+01:0")
    fs, st, log = make(fs)
    assert log.repairs == 1
    assert fs.content(LOG + "/2024-05-02.csv").rstrip(b" \n") == good.rstrip(b"\n")
    assert [v[R.A_PLUS] for _, v in assert_parses(fs.content(LOG + "/2024-05-02.csv"))] == [0, 1, 2]


# -- read_rows' one buffer: lines across its end, filling it, CRLF, overlong, offsets ----------


def _day(dialect, n=12):
    """(header line, [row lines]) of a day file ``dialect`` writes (CRLF line ends)."""
    fs, st, log = make(dialect=dialect)
    for i in range(n):
        assert log.write(kaifa(step((2024, 5, 2, 10, 0, 0), 5 * i), a_plus=1000 + i), None, EXTRAS)
    lines = fs.content(LOG + "/2024-05-02.csv").split(b"\n")
    assert lines[-1] == b""
    return lines[0] + b"\n", [x + b"\n" for x in lines[1:-1]]


def _reference(data, start=0):
    """What read_rows yields (with_offset), the plain way: every LF-terminated line after the
    header from ``start`` on, at most LINE_MAX bytes, that parses; the last line without LF
    is no row."""
    nl = data.find(b"\n")
    spec, sep = _parse_header(data[:nl])
    pos = max(start, nl + 1)
    out = []
    while True:
        i = data.find(b"\n", pos)
        if i < 0:
            return out
        if i - pos <= LINE_MAX:
            row = _parse_line(data[pos:i].strip(), spec, sep)
            if row is not None:
                out.append((row[0], row[1], i + 1))
        pos = i + 1


def _padded(row, size):
    """``row`` (a CRLF line) made ``size`` bytes long with spaces before its CR: the same row."""
    assert len(row) <= size
    return row[:-2] + b" " * (size - len(row)) + b"\r\n"


class _NoReadinto:
    """An ``fs`` whose files have only ``read`` (read_rows copies into its buffer then)."""

    def __init__(self, fs):
        self.inner = fs

    def open(self, path, mode):
        f = self.inner.open(path, mode)

        class File:
            read = f.read
            seek = f.seek
            close = f.close

        return File()


def _check(fs, path, data, starts=(0,)):
    for start in starts:
        want = _reference(data, start)
        assert list(read_rows(fs, path, start, True)) == want, start
        assert list(read_rows(fs, path, start)) == [r[:2] for r in want], start
        assert list(read_rows(_NoReadinto(fs), path, start, True)) == want, start
        assert list(read_rows(fs, path, start, True, bytearray(ROWS_BUF + 7))) == want, start


def _file(data):
    fs = FakeFS()
    fs.mkdir("/sd")
    fs.mkdir(LOG)
    fs.add_file(LOG + "/d.csv", data)
    return fs, LOG + "/d.csv"


@pytest.mark.parametrize("dialect", ["excel-de", "international"])
def test_read_rows_finds_every_row_wherever_the_buffer_cuts_it(dialect):
    """Valid rows shifted byte by byte across the buffer's end (a padding line of 0..1100
    bytes first): every row, its CR in one read and its LF in the next, a LF as the buffer's
    last byte, a row ending exactly at the buffer's end."""
    head, rows = _day(dialect)
    body = b"".join(rows)
    assert len(body) > ROWS_BUF
    cuts = set()
    for pad in range(0, 1100):
        data = head + (b"x" * (pad - 1) + b"\n" if pad else b"") + body
        fs, path = _file(data)
        want = _reference(data)
        assert len(want) == len(rows)
        assert list(read_rows(fs, path, 0, True)) == want, pad
        # where the first read's end falls: inside a row, on its CR, on its LF
        end = len(head) + ROWS_BUF
        cuts.add(data[end - 1 : end])
    assert {b"\r", b"\n"} <= cuts and len(cuts) > 2


@pytest.mark.parametrize("dialect", ["excel-de", "international"])
def test_read_rows_lines_that_fill_the_buffer_overlong_and_unterminated(dialect):
    """Rows of exactly LINE_MAX bytes (kept) and one more (skipped), filling the buffer to its
    last byte, overlong lines of up to 3000 bytes across several reads, blank and LF-only
    lines, a NUL run, an unterminated last row: the same rows and offsets as the plain reading,
    from the start and from every offset it yields (and from within the header)."""
    head, rows = _day(dialect)
    one = rows[0]
    fill = ROWS_BUF - len(head)  # the first read after the header holds exactly this much
    parts = [
        b"p" * (fill - len(rows[1]) - len(rows[2]) - 1) + b"\n",
        rows[1],
        rows[2],  # ends exactly at the buffer's last byte
        _padded(rows[3], LINE_MAX + 1),  # LINE_MAX bytes before the LF: kept
        _padded(rows[4], LINE_MAX + 2),  # one more: skipped
        rows[5],
        b"y" * 1024 + b"\n",
        rows[6],
        b"z" * 3000 + b"\r\n",
        b"\n\r\n   \r\n",
        rows[7],
        b"\0" * 700 + b"\n",
        _padded(rows[8], ROWS_BUF),  # overlong: skipped
        rows[9],
        b"w" * (LINE_MAX - 1) + b"\n",
        rows[10],
        one[:-2] + b"\n",  # LF only
        rows[11][:-2],  # unterminated: no row
    ]
    data = head + b"".join(parts)
    fs, path = _file(data)
    want = _reference(data)
    got = [r[1][R.A_PLUS] for r in want]
    assert got == [1001, 1002, 1003, 1005, 1006, 1007, 1009, 1010, 1000], (got, want)
    assert data[: len(head) + fill] == head + b"".join(parts[:3])
    starts = [0, 5, len(head) - 1] + [r[2] for r in want]
    _check(fs, path, data, starts)


def test_read_rows_on_a_real_file_in_bounded_reads(tmp_path):
    """The same through RealFS (CPython's unbuffered files: readinto may return less)."""
    head, rows = _day("excel-de")
    data = head + b"".join(rows * 20) + b"q" * 2000 + b"\n" + rows[0]
    (tmp_path / "d.csv").write_bytes(data)
    fs = RealFS(root=str(tmp_path))
    want = _reference(data)
    assert len(want) == 241
    _check(fs, "/d.csv", data, (0, want[100][2]))
    with pytest.raises(ValueError):
        list(read_rows(fs, "/d.csv", 0, True, bytearray(ROWS_BUF - 1)))
