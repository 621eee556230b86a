"""Energy per hour/day/month (smartmeter/datalog/usage.py, usagelog.py) through the real loop.

A simulated October (the DST change on the 27th makes a 25-hour day) runs through
``App.loop_once`` with the virtual meter, the real CSV log and the usage sink on a fake SD card:
a 3-hour power cut (the reader reboots and catches up from the CSV) and a meter replacement
whose counters restart at 0. The summary is then checked against the energy registers in the
CSV files, to the Wh; a summary rebuilt from the CSV alone must equal the live one.
"""

import sys
import time

import pytest
from fakefs import FakeFS
from test_app import KEY, Rig

from sim.meter import VirtualMeter
from smartmeter.datalog import usage as U
from smartmeter.datalog import usagefile as UF
from smartmeter.datalog.csvlog import read_rows
from smartmeter.datalog.usagelog import SLOT_PATHS, SLOTS
from smartmeter.protocol.reading import A_MINUS, A_PLUS
from smartmeter.timeutil import epoch_from_fields

STEP = 300  # one telegram per 5 minutes (well inside GAP_S) keeps a month at ~9000 telegrams
START = epoch_from_fields((2024, 9, 30, 22, 0, 0))  # 2024-10-01 00:00 CEST
END = epoch_from_fields((2024, 10, 31, 23, 0, 0))  # 2024-11-01 00:00 CET
CUT = (epoch_from_fields((2024, 10, 10, 7, 2, 0)), 3 * 3600)  # 09:02-12:02 CEST
SWAP = epoch_from_fields((2024, 10, 20, 10, 31, 0))  # the new meter starts at 0 Wh
PRICE = "30.5"  # ct/kWh


def _run_month(fs):
    rig = Rig(START, fs=fs, PRICE_CT_KWH=PRICE, FEED_IN_CT_KWH="8")
    reboots = 0
    t = START
    while t < END:
        if CUT[0] <= t < CUT[0] + CUT[1]:
            t += STEP  # no power: no telegrams, and the meter counts nothing
            continue
        if t >= CUT[0] + CUT[1] and reboots == 0:
            reboots = 1  # power is back: the reader boots again on the same card
            rig.meter._last_epoch = t
            meter = rig.meter
            rig = Rig(t, fs=fs, PRICE_CT_KWH=PRICE, FEED_IN_CT_KWH="8")
            rig.meter = meter
            for _ in range(50):  # the catch-up replay from the CSV, a slice per pass
                rig.app.loop_once()
            assert rig.app.usage.loaded_from in SLOTS and not rig.app.usage.replaying
        if t >= SWAP and rig.meter.meter_number != "NEW":
            old = rig.meter
            rig.meter = VirtualMeter("netznoe", KEY, None, seed=3, meter_number="NEW")
            rig.meter.a_plus_wh = rig.meter.a_minus_wh = 0
            rig.meter.frame_counter = old.frame_counter + 1
        rig.clock.epoch = t
        rig.telegram(t, passes=1)
        t += STEP
    rig.app.loop_once()
    return rig


def _csv_rows(fs):
    rows = []
    for name in sorted(fs.listdir("/sd/logs")):
        for epoch, values in read_rows(fs, "/sd/logs/" + name):
            rows.append((epoch, values[A_PLUS], values[A_MINUS]))
    rows.sort()
    return rows


def _expected(rows, key):
    """Register differences between consecutive CSV rows, booked to ``key(later row)``; none
    across a gap (> GAP_S) or a register that went down (the new meter)."""
    out = {}
    for (t0, a0, e0), (t1, a1, e1) in zip(rows, rows[1:]):
        if t1 - t0 > U.GAP_S or a1 < a0 or e1 < e0:
            continue
        k = key(t1)
        imp, exp = out.get(k, (0, 0))
        out[k] = (imp + a1 - a0, exp + e1 - e0)
    return out


@pytest.fixture(scope="module")
def month():
    fs = FakeFS()
    rig = _run_month(fs)
    return rig, fs, _csv_rows(fs)


def test_month_hours_and_days_equal_the_register_differences(month):
    rig, fs, rows = month
    u = rig.app.state.usage
    assert len(rows) > 8800 and rig.counters.csv_lost == 0  # rows since the reboot + before
    hours = _expected(rows, lambda t: t // 3600)
    kept = list(u.hours.rows())
    assert len(kept) == U.HOURS
    for base in kept:  # the last 72 hours, to the Wh
        key = u.hours.data[base]
        got = u.period(u.hours, key)
        assert (got[0], got[1]) == hours.get(key, (0, 0)), key
    days = _expected(rows, u.day_key)
    assert u.days.count == 31  # October (the first telegram is at 00:00 on the 1st)
    for day, (imp, exp) in days.items():
        got = u.period(u.days, day)
        if day == u.day_key(SWAP):
            assert got[0] == imp and got[4] & U.JUMP
            continue
        assert (got[0], got[1]) == (imp, exp), day
    # a whole normal day is A+ at its end minus A+ at the end of the day before
    d = u.day_key(epoch_from_fields((2024, 10, 5, 12, 0, 0)))
    last = {u.day_key(t): (a, e) for t, a, e in rows}
    assert u.period(u.days, d)[:2] == (
        last[d][0] - last[d - 1][0],
        last[d][1] - last[d - 1][1],
    )
    month_total = u.period(u.months, 2024 * 12 + 9)
    assert month_total[0] == sum(v[0] for k, v in days.items() if k >= u.day_key(START))


def test_dst_day_has_25_hours(month):
    rig, _fs, rows = month
    u = rig.app.state.usage
    day = u.day_key(epoch_from_fields((2024, 10, 27, 12, 0, 0)))
    hours_of_day = {t // 3600 for t, _a, _e in rows if u.day_key(t) == day}
    assert len(hours_of_day) == 25
    last = {u.day_key(t): a for t, a, _e in rows}
    assert u.period(u.days, day)[0] == last[day] - last[day - 1]
    assert not u.period(u.days, day)[4] & U.GAP


def test_power_cut_is_a_gap_not_zero(month):
    rig, _fs, rows = month
    u = rig.app.state.usage
    day = u.day_key(CUT[0])
    assert u.period(u.days, day)[4] & U.GAP
    first_after = min(t for t, _a, _e in rows if t >= CUT[0] + CUT[1])
    last_before = max(t for t, _a, _e in rows if t < CUT[0])
    assert first_after - last_before > 3 * 3600
    # the rebooted reader's rings still hold the days before the cut (loaded from the card)
    assert u.period(u.days, day - 5) is not None and u.period(u.days, day - 5)[0] > 1000


def test_meter_replacement_makes_no_spike(month):
    rig, _fs, rows = month
    u = rig.app.state.usage
    assert u.jumps == 1
    day = u.day_key(SWAP)
    imp = u.period(u.days, day)[0]
    normal = [u.period(u.days, day - k)[0] for k in (1, 2, 3)]
    assert imp < 2 * max(normal)  # no 11 MWh spike from the old counter
    # the day is the old meter's part plus the new meter's part, to the Wh
    old = [r for r in rows if u.day_key(r[0]) <= day and r[0] < SWAP]
    new = [r for r in rows if u.day_key(r[0]) == day and r[0] >= SWAP]
    before = [r for r in rows if u.day_key(r[0]) == day - 1][-1]
    assert imp == (old[-1][1] - before[1]) + (new[-1][1] - new[0][1])


def test_cost_of_each_day_is_its_quarters_at_the_tariff(month):
    rig, _fs, rows = month
    u = rig.app.state.usage
    quarters = _expected(rows, lambda t: t // 900)
    day = u.day_key(epoch_from_fields((2024, 10, 30, 12, 0, 0)))
    want = sum(U.cost_mct(v[0], 30_500) for q, v in quarters.items() if u.day_key(q * 900) == day)
    credit = sum(U.cost_mct(v[1], 8_000) for q, v in quarters.items() if u.day_key(q * 900) == day)
    got = u.period(u.days, day)
    assert (got[2], got[3]) == (want, credit)
    assert not got[4] & (U.NOPRICE | U.NOFEED)


def test_summary_rebuilt_from_the_csv_equals_the_live_one(month):
    rig, fs, rows = month
    live = rig.app.state.usage
    for path in SLOT_PATHS:
        fs.remove(path)
    again = Rig(END, fs=fs, PRICE_CT_KWH=PRICE, FEED_IN_CT_KWH="8")
    sink = again.app.usage
    assert sink.loaded_from == "rebuilt" and sink.replaying
    passes = 0
    while sink.replaying:
        again.app.loop_once()
        passes += 1
    assert passes > 10  # sliced: a pass never replays the whole month
    rebuilt = again.app.state.usage
    assert sink.replayed == len(rows)
    for ring in ("hours", "days", "months"):
        a, b = getattr(live, ring), getattr(rebuilt, ring)
        rows_a = [tuple(a.data[i : i + 6]) for i in a.rows()]
        rows_b = [tuple(b.data[i : i + 6]) for i in b.rows()]
        if ring == "hours":  # the live summary closed its last hour; compare energy and cover
            rows_a = [r[:3] for r in rows_a]
            rows_b = [r[:3] for r in rows_b]
        assert rows_a == rows_b, ring
    saved = [p for p in SLOT_PATHS if p in fs.files]  # the rebuild ends with a save
    assert saved and all(fs.stat(p)[6] == UF.size_bytes() for p in saved)


def test_damaged_newest_slot_falls_back_to_the_other(tmp_path):
    fs = FakeFS()
    rig = Rig(START, fs=fs, PRICE_CT_KWH=PRICE)
    for k in range(40):  # 3 h 20 min: three saves, both slots written
        rig.telegram(START + STEP * k, passes=1)
        rig.clock.epoch = START + STEP * (k + 1)
    assert rig.app.usage.saves >= 2
    other = SLOTS[1 - rig.app.usage._good]
    good = bytes(fs.files[SLOT_PATHS[1 - rig.app.usage._good]].data)
    fs.files[SLOT_PATHS[rig.app.usage._good]].data[100:110] = b"\0" * 10  # torn by a power cut
    again = Rig(START + STEP * 40, fs=fs, PRICE_CT_KWH=PRICE)
    assert again.app.usage.loaded_from == other
    probe = U.Usage()
    UF.from_bytes(probe, good)
    assert again.app.state.usage.seq == probe.seq
    while again.app.usage.replaying:  # catch-up brings back what the torn save held
        again.app.loop_once()
    u, v = rig.app.state.usage, again.app.state.usage
    day = u.day_key(START + 3600)
    assert u.period(u.days, day)[:2] == v.period(v.days, day)[:2]


def _filled():
    """A summary with rows in every ring, peaks, a jump and a gap (a month of telegrams)."""
    u = U.Usage(U.Tariff(price_mct=30_500, feed_in_mct=8000))
    t = START
    a = 1_000_000
    for k in range(0, 40 * 86400, 600):
        if 5 * 86400 <= k < 5 * 86400 + 7200:
            continue  # a gap
        a += 40 + k % 7
        u.add(t + k, a, k // 900)
    u.add(t + 40 * 86400, 5, 0)  # a new meter
    u.seq = 41
    return u


def _same(u, v):
    for a, b in zip(u._rings(), v._rings()):
        assert (a.count, a.head, list(a.data)) == (b.count, b.head, list(b.data))
    assert u.peaks.to_words() == v.peaks.to_words()
    for name in ("seq", "last_epoch", "last_imp", "last_exp", "jumps"):
        assert getattr(u, name) == getattr(v, name), name


def _cleared(v):
    empty = U.Usage(v.tariff)
    for a, b in zip(empty._rings(), v._rings()):
        assert (a.count, a.head, list(a.data)) == (b.count, b.head, list(b.data))
    assert v.peaks.to_words() == empty.peaks.to_words()
    assert (v.last_epoch, v.last_imp, v.last_exp, v.jumps, v._open_q) == (None,) * 3 + (0, None)


@pytest.mark.parametrize("where", ["fakefs", "realfs"])
def test_a_slot_loads_piece_by_piece_into_the_summarys_own_arrays(tmp_path, where):
    """``Usage.load`` reads the file straight into the rings' arrays (no 9 KB read, no new
    arrays) and gives what ``from_bytes`` of the whole file gives; on a PC's RealFS (unbuffered
    CPython files) and on the fake card alike."""
    from smartmeter.datalog.sd import RealFS

    u = _filled()
    data = UF.to_bytes(u)
    fs = FakeFS() if where == "fakefs" else RealFS(fsync=False, root=str(tmp_path))
    f = fs.open("/u.bin", "wb")
    f.write(data)
    f.close()
    whole = U.Usage(u.tariff)
    UF.from_bytes(whole, data)
    _same(u, whole)
    v = _filled()
    v.clear()
    arrays = [r.data for r in v._rings()]
    f = fs.open("/u.bin", "rb")
    assert U.read_head(f) == (u.seq, True)
    f.seek(0)
    v.load(f)
    f.close()
    assert all(r.data is a for r, a in zip(v._rings(), arrays))
    _same(u, v)
    assert v._open_q == whole._open_q
    day = u.day_key(START + 39 * 86400)
    assert v.period(v.days, day) is not None and v.period(v.days, day) == u.period(u.days, day)


def _resum(data):
    """``data`` with its checksum made right again (damage the checksum cannot see)."""
    data = bytearray(data)
    data[28:32] = U._i32(UF.checksum(memoryview(data)[U._HEAD :]))
    return bytes(data)


def _damaged(data, how):
    quarters = U._HEAD + 3 * 8 + (U.HOURS + U.DAYS + U.MONTHS) * U._FIELDS * 4  # its count
    if how == "short-header":
        return data[:20]
    if how == "short-ring":
        return data[: quarters + 8 + 100]
    if how == "short-peaks":
        return data[:-1]
    if how == "too-long":
        return data + b"\0"
    if how == "checksum":
        return data[: quarters + 40] + bytes([data[quarters + 40] ^ 1]) + data[quarters + 41 :]
    if how == "ring-count":
        return _resum(data[:quarters] + U._i32(U.QUARTERS + 1) + data[quarters + 4 :])
    if how == "ring-head":
        return _resum(data[: quarters + 4] + U._i32(U.QUARTERS) + data[quarters + 8 :])
    if how == "peaks":
        return _resum(data[:-24] + U._i32(-5) + data[-20:])  # a peak of -5 Wh
    if how == "sizes":
        return _resum(data[:4] + U._i32(1) + data[8:])
    raise AssertionError(how)


class _Card:
    """The sink's view of a mounted card with no day files."""

    state = "ok"

    def __init__(self, fs):
        self.fs = fs

    def log_files(self):
        return []


DAMAGE = [
    "short-header",
    "short-ring",
    "short-peaks",
    "too-long",
    "checksum",
    "ring-count",
    "ring-head",
    "peaks",
    "sizes",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_slot_clears_the_summary_never_half_loaded(how):
    """Read piece by piece, a damaged file is found only after some of it is in the arrays:
    the summary is then cleared (and ValueError raised), never left half loaded."""
    data = _damaged(UF.to_bytes(_filled()), how)
    with pytest.raises(ValueError):
        UF.from_bytes(U.Usage(), data)  # the whole-file check agrees: it is damaged
    fs = FakeFS()
    f = fs.open("/u.bin", "wb")
    f.write(data)
    f.close()
    v = _filled()  # holding other data when the load starts
    f = fs.open("/u.bin", "rb")
    with pytest.raises(ValueError):
        v.load(f)
    _cleared(v)


@pytest.mark.parametrize("how", DAMAGE)
def test_the_sink_loads_the_other_slot_when_the_newer_is_damaged(how):
    """Start-up: the newer slot (by the headers' save counters) damaged in any way, the older
    good one is loaded whole and correct; both damaged: the summary is rebuilt from nothing."""
    from smartmeter.datalog.usagelog import UsageSink

    old = _filled()
    older = UF.to_bytes(old)
    new = _filled()
    new.add(START + 41 * 86400, 2000, 0)
    new.seq = 50
    newer = UF.to_bytes(new)
    assert new.seq > old.seq
    fs = FakeFS()
    fs.mkdir("/sd")
    fs.mkdir("/sd/.smartmeter")
    fs.mkdir("/sd/logs")
    for path, data in zip(SLOT_PATHS, (_damaged(newer, how), older)):
        f = fs.open(path, "wb")
        f.write(data)
        f.close()

    class St:
        usage = None
        last_errors = {}

    storage = _Card(fs)
    sink = UsageSink(St(), storage, old.tariff)
    assert sink.loaded_from == SLOTS[1]
    _same(old, sink.usage)
    f = fs.open(SLOT_PATHS[1], "wb")
    f.write(_damaged(older, how))
    f.close()
    sink = UsageSink(St(), storage, old.tariff)
    assert sink.loaded_from == "rebuilt"
    _cleared(sink.usage)


def test_a_summary_of_the_version_before_grid_fees_still_loads_at_start_up(monkeypatch):
    """An ``SMU2`` slot (6 fields a row, no peaks), the newer of the two, is loaded whole by the
    sink (once, after the update): its rows, grid parts 0, peaks empty. The code for files of
    older versions (``usagefile.py``) is loaded for it, and only for it: a start from a slot of
    this version never imports it."""
    from smartmeter import datalog
    from smartmeter.datalog.usagelog import UsageSink

    monkeypatch.delitem(sys.modules, "smartmeter.datalog.usagefile")
    monkeypatch.delattr(datalog, "usagefile")

    u = _filled()
    cur = UF.to_bytes(u)
    rings = bytearray()
    for ring in u._rings():
        rings += U._i32(ring.count) + U._i32(ring.head)
        for row in range(ring.size):
            rings += b"".join(U._i32(v) for v in ring.data[row * U._FIELDS : row * U._FIELDS + 6])
    old = b"SMU2" + cur[4:8] + U._i32(u.seq + 5) + cur[12:28] + U._i32(UF.checksum(rings))
    old += bytes(rings)
    assert len(old) == UF.size_bytes(2)
    fs = FakeFS()
    for d in ("/sd", "/sd/.smartmeter", "/sd/logs"):
        fs.mkdir(d)
    for path, data in zip(SLOT_PATHS, (cur, old)):
        f = fs.open(path, "wb")
        f.write(data)
        f.close()

    class St:
        usage = None
        last_errors = {}

    storage = _Card(fs)
    fs.files[SLOT_PATHS[1]].data[:4] = b"SMU9"  # no summary: the SMU3 slot is the one loaded
    sink = UsageSink(St(), storage, u.tariff)
    assert sink.loaded_from == SLOTS[0] and "smartmeter.datalog.usagefile" not in sys.modules
    fs.files[SLOT_PATHS[1]].data[:4] = b"SMU2"
    sink = UsageSink(St(), storage, u.tariff)
    v = sink.usage
    assert sink.loaded_from == SLOTS[1] and v.seq == u.seq + 5
    assert "smartmeter.datalog.usagefile" in sys.modules
    q = (START + 39 * 86400) // 900
    assert u.quarter(q)[0] > 0 and v.quarter(q)[:2] == u.quarter(q)[:2]
    day = u.day_key(START + 39 * 86400)
    assert v.period(v.days, day)[:4] == u.period(u.days, day)[:4]
    assert v.peaks.to_words() == U.Usage().peaks.to_words()


@pytest.mark.parametrize("dynamic", [False, True])
def test_only_a_board_with_day_ahead_prices_loads_their_code_and_array(monkeypatch, dynamic):
    """The day-ahead prices' code and their 200-quarter array (``datalog/market.py``) are for a
    board with ``PRICE_DYNAMIC``: one with fixed prices has the plain tariff and never imports
    the module (the CircuitPython VM: 2.3 KB of code and 0.9 KB of array off its heap)."""
    from smartmeter.datalog import market

    monkeypatch.delitem(sys.modules, "smartmeter.datalog.market")
    rig = Rig(START, PRICE_CT_KWH=PRICE, PRICE_DYNAMIC=dynamic)
    tariff = rig.app.tariff
    assert tariff is rig.app.state.usage.tariff
    assert ("smartmeter.datalog.market" in sys.modules) == dynamic
    assert hasattr(tariff, "_market") == dynamic and hasattr(tariff, "set_market") == dynamic
    if dynamic:
        assert type(tariff).__name__ == "MarketTariff" and len(tariff._market) == 200
    else:
        assert type(tariff) is U.Tariff and not isinstance(tariff, market.MarketTariff)
    assert tariff.import_q(START // 900) == (30_500, False)  # no market price yet
    for k in range(30):
        rig.telegram(START + STEP * k, passes=1)
        rig.clock.epoch = START + STEP * (k + 1)
    u = rig.app.state.usage
    imp, _exp, cost = u.period(u.days, u.day_key(START))[:3]
    assert imp > 0 and cost > 0  # costed at the fixed price either way


def test_time_going_back_and_duplicates_are_not_counted():
    u = U.Usage()
    t = START
    u.add(t, 1000, 0)
    u.add(t + 5, 1010, 0)
    u.add(t + 5, 1010, 0)  # duplicate
    u.add(t + 3, 1005, 0)  # older (clock corrected back)
    u.add(t + 10, 1020, 0)
    assert u.period(u.hours, t // 3600)[0] == 20


def test_memory_and_file_size_are_fixed():
    u = U.Usage()
    data = UF.to_bytes(u)
    assert len(data) == UF.size_bytes() == 8968
    for ring in (u.quarters, u.hours, u.days, u.months):
        assert ring.data.itemsize == 4
    assert sum(len(r.data) * 4 for r in (u.hours, u.days, u.months)) == 3276
    assert len(u.quarters.data) * 4 == 5600
    t = START
    for k in range(0, 400 * 86400, 3600):  # 400 days: the rings stay their size
        u.add(t + k, 1000 + k // 100, 0)
    assert (u.hours.count, u.days.count, u.months.count) == (U.HOURS, U.DAYS, U.MONTHS)
    assert u.quarters.count == U.QUARTERS == 200
    assert len(UF.to_bytes(u)) == 8968


_VM_SCRIPT = """
import gc
from smartmeter.datalog.usage import Usage, Tariff
from smartmeter.datalog.usagefile import from_bytes, size_bytes, to_bytes
gc.collect()
before = gc.mem_alloc()
u = Usage(Tariff(price_mct=30500, feed_in_mct=8000))
gc.collect()
print("bytes", gc.mem_alloc() - before)
t = 1727733600
a = 10000000
e = 500
for k in range(0, 3 * 86400, 60):
    if 40000 <= k < 50800:
        continue
    a += 7
    e += k % 2
    u.add(t + k, a, e)
u.add(t + 3 * 86400, 5, 0)
day = u.day_key(t + 86400)
print("day", u.period(u.days, day))
data = to_bytes(u)
v = Usage(Tariff(price_mct=30500, feed_in_mct=8000))
from_bytes(v, data)
print("file", len(data), size_bytes(), v.period(v.days, day) == u.period(u.days, day), v.jumps)
"""


def test_usage_core_runs_under_micropython_with_a_bounded_heap(run_micropython, require):
    """The same summary under the MicroPython VM: identical numbers, and the heap it costs."""
    from mpy import micropython_available

    ok, why = micropython_available()
    require(ok, why)
    files = [
        ("smartmeter/__init__.py", "smartmeter/__init__.py"),
        ("smartmeter/timeutil.py", "smartmeter/timeutil.py"),
        ("smartmeter/datalog/__init__.py", "smartmeter/datalog/__init__.py"),
        ("smartmeter/datalog/usage.py", "smartmeter/datalog/usage.py"),
        ("smartmeter/datalog/peaks.py", "smartmeter/datalog/peaks.py"),
        ("smartmeter/datalog/usagefile.py", "smartmeter/datalog/usagefile.py"),
    ]
    rc, out, err = run_micropython(_VM_SCRIPT, files=files)
    assert rc == 0, out + err
    lines = out.strip().splitlines()
    heap = int(lines[0].split()[1])
    # the four rings (8876 B), the peaks (24 B), headers: 9792 B; a fixed-price tariff holds no
    # market prices (market.MarketTariff's 800 B: 10 688 B with them)
    assert 8900 <= heap <= 10200, heap
    u = U.Usage(U.Tariff(price_mct=30500, feed_in_mct=8000))  # the same on CPython
    t, a, e = 1727733600, 10000000, 500
    for k in range(0, 3 * 86400, 60):
        if 40000 <= k < 50800:
            continue
        a += 7
        e += k % 2
        u.add(t + k, a, e)
    u.add(t + 3 * 86400, 5, 0)
    assert lines[1] == "day %r" % (u.period(u.days, u.day_key(t + 86400)),)
    assert lines[2] == "file 8968 8968 True 1"
    print("usage summary heap under the MicroPython VM: %d bytes" % heap)


@pytest.fixture
def broker(tmp_path):
    from mosquitto import mosquitto_broker

    with mosquitto_broker(tmp_path / "broker") as b:
        yield b


def mqtt_minutes(broker, listener, start, minutes, settings, until):
    """The real app with MQTT to ``broker`` (and ``settings``) and a virtual meter sending one
    telegram a minute of meter time from ``start`` for ``minutes``, then the loop running until
    a state message has every key of ``until`` (5 s at most). :returns: (app, meter, its A+
    register at the start, the states with those keys)"""
    import socket

    from sim.hardware import Console, Hardware, ManualClock, SimRadio, SimUart
    from smartmeter import app as app_mod
    from smartmeter import config

    values = {
        "METER_KEY": KEY.hex().upper(),
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": broker.port,
        "CIRCUITPY_WIFI_SSID": "home",
    }
    values.update(settings)
    cfg = config.load(lambda _n: None, values)
    clock = ManualClock(start_epoch=start)
    uart = SimUart(buffer_size=8192)
    hw = Hardware(uart=uart, pool=socket, radio=SimRadio(), clock=clock, console=Console(None))
    app = app_mod.build(hw, cfg, web=False)
    meter = VirtualMeter("netznoe", KEY, None, seed=5)
    first = meter.a_plus_wh
    for k in range(minutes):
        t = start + 60 * k
        clock.epoch = t
        uart.push(meter.telegram(t))  # a minute of meter time per telegram
        app.loop_once()
        clock.advance(20)  # ... but real time for the MQTT link (its deadlines are ticks)
        time.sleep(0.02)

    def done():
        return [s for s in listener.states() if all(key in s for key in until)]

    end = time.monotonic() + 5
    while time.monotonic() < end and not done():
        app.loop_once()
        clock.advance(50)
        time.sleep(0.05)
    return app, meter, first, done()


def test_today_and_the_price_now_reach_home_assistant(broker, tmp_path):
    """The real app loop with MQTT on: today's import/export (from the usage summary) and the
    price of this hour arrive at Mosquitto as Home Assistant entities with discovery."""
    import json

    from test_mqtt import Listener

    listener = Listener(broker)
    try:
        start = epoch_from_fields((2024, 5, 29, 22, 0, 0))  # local midnight (CEST)
        app, meter, first, states = mqtt_minutes(
            broker, listener, start, 40, {"PRICE_CT_KWH": "28.5"}, ("energy_today_import",)
        )
        assert states, listener.snapshot()[-5:]
        last = states[-1]
        u = app.state.usage
        today = u.period(u.days, u.day_key(start + 60))
        assert 0 < today[0] <= meter.a_plus_wh - first
        # the message of a reading carries the total booked up to the reading before it
        assert 0 < last["energy_today_import"] * 1000 <= today[0]
        assert round(last["energy_today_import"] * 1000) in [today[0] - d for d in range(0, 200)]
        assert last["price"] == 28.5  # ct/kWh
        configs = listener.configs()
        prefix = "homeassistant/sensor/smartmeter_%s/" % meter.meter_number
        today_cfg, _ = configs[prefix + "energy_today_import/config"]
        assert today_cfg["device_class"] == "energy"
        assert today_cfg["state_class"] == "total_increasing"
        assert today_cfg["unit_of_measurement"] == "kWh"
        price_cfg, _ = configs[prefix + "price/config"]
        assert price_cfg["unit_of_measurement"] == "ct/kWh" and "device_class" not in price_cfg
        assert json.dumps(last)  # plain JSON numbers
    finally:
        listener.close()


def test_a_register_a_little_lower_is_a_glitch_not_a_meter_change():
    # issue 18 item 12: a step back of a few Wh is skipped (no jump, no flag, nothing booked);
    # the next telegram counts from the last good value
    u = U.Usage()
    t = epoch_from_fields((2026, 6, 25, 10, 0, 0))
    for k, a_plus in enumerate((1_000_000, 999_990, 1_000_005, 999_500, 1_000_020)):
        u.add(t + 5 * k, a_plus, 0)
    assert u.jumps == 0 and u.backwards == 2
    assert u.period(u.hours, (t + 20) // 3600)[0] == 20  # the meter's own difference
    assert not u.period(u.days, u.day_key(t))[4] & U.JUMP
    u.add(t + 30, 10, 0)  # a new meter, starting near 0: a jump as before
    assert u.jumps == 1
