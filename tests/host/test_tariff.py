"""Cheapest window, grid fees by time of day and the month's peaks (issue 19 items 3, 5, 6).

Pure parts first (``smartmeter/datalog/cheapest.py``, ``gridfee.py``, ``peaks.py``), each
against a brute-force search over the same numbers: random prices with holes and negative
prices, windows across local midnight, the 92- and 100-quarter days of the clock change.
"""

import random
from datetime import UTC

import pytest

from smartmeter import config
from smartmeter.datalog import cheapest as C
from smartmeter.datalog import gridfee as G
from smartmeter.datalog import peaks as P
from smartmeter.timeutil import civil_from_days, eu_offset, iso_local, utc_epoch


def _utc(y, mo, d, h=0, mi=0):
    """Vienna local time -> UTC epoch."""
    return utc_epoch((y, mo, d, h, mi, 0))[0]


# -- cheapest window ---------------------------------------------------------------------------
def _brute(prices, now, hours, fee=None):
    """Every start from the current quarter on whose whole window ends within 24 h."""
    q0 = now // 900
    length = hours * 4
    best = None
    for s in range(q0, q0 + 96 - length + 1):
        total = 0
        for q in range(s, s + length):
            p = prices.get(q * 900)
            if p is None:
                break
            total += p + (fee.fee(q * 900) if fee is not None else 0)
        else:
            if best is None or total < best[1]:
                best = (s, total)
    return best


def _check(prices, now, fee=None):
    ch = C.Cheapest()
    assert ch.update(now, lambda q: prices.get(q * 900), fee, version=1)
    for k, hours in enumerate(C.HOURS):
        want = _brute(prices, now, hours, fee)
        if want is None:
            assert ch.start[k] == C.NONE, hours
            continue
        assert ch.start[k] == want[0], (hours, _iso(ch.start[k]), _iso(want[0]))
        assert abs(ch.avg_mct[k] * hours * 4 - want[1]) <= hours * 2
    return ch


def _iso(q):
    return iso_local(q * 900)


def _quarters(first, last, rng, hourly=False, holes=0.0):
    """Random prices (mct/kWh, some negative) per quarter epoch in [first, last)."""
    out = {}
    price = 0
    for t in range(first, last, 900):
        if not hourly or t % 3600 == 0:
            price = rng.randint(-3000, 45000)
        if rng.random() >= holes:
            out[t] = price
    return out


@pytest.mark.parametrize("seed", range(12))
def test_cheapest_equals_brute_force_over_random_prices(seed):
    rng = random.Random(seed)
    start = _utc(2026, 1, 14) + rng.randrange(0, 86400, 60)
    prices = _quarters(
        start - start % 900 - 3600, start + 2 * 86400, rng, seed % 2, 0.02 * (seed % 3)
    )
    _check(prices, start)


def test_cheapest_across_midnight_and_ties_take_the_earliest():
    now = _utc(2026, 1, 14, 18, 7)
    prices = {t: 20000 for t in range(now - now % 900, now + 86400, 900)}
    for t in range(_utc(2026, 1, 14, 23, 0), _utc(2026, 1, 15, 2, 0), 900):
        prices[t] = 5000  # 23:00-02:00 is cheap: the 3-hour window crosses midnight
    ch = _check(prices, now)
    assert _iso(ch.start[2]) == "2026-01-14T23:00:00+01:00"
    assert _iso(ch.start[0]) == "2026-01-14T23:00:00+01:00"  # the earliest of equals
    assert ch.avg_mct[2] == 5000


@pytest.mark.parametrize(
    "day,quarters", [((2026, 3, 29), 92), ((2026, 10, 25), 100)], ids=["92", "100"]
)
def test_cheapest_on_a_clock_change_day(day, quarters):
    first = _utc(*day)
    last = _utc(*civil_from_days(_days(day) + 1))
    assert (last - first) // 900 == quarters
    rng = random.Random(quarters)
    prices = _quarters(first, last + 86400, rng)
    # the cheapest 3 hours (of real time) from 01:00 local straddle the clock change
    for t in range(_utc(*day, 1, 0), _utc(*day, 1, 0) + 3 * 3600, 900):
        prices[t] = -5000  # below every random price
    for minute in range(0, 24 * 60, 45):  # every 45 min through the day
        _check(prices, first + minute * 60)
    ch = _check(prices, first - 3600)
    assert _iso(ch.start[2]).startswith("%04d-%02d-%02dT01:00:00+0" % day)
    # from 01:00 local the window spans 3 hours of real time: 2 local hours in March, 4 in October
    end = ch.start[2] * 900 + 3 * 3600
    assert iso_local(end)[11:16] == ("05:00" if quarters == 92 else "03:00")


def _days(day):
    from smartmeter.timeutil import days_from_civil

    return days_from_civil(*day)


def test_cheapest_is_recomputed_when_prices_arrive_or_the_quarter_passes():
    now = _utc(2026, 1, 14, 12, 0)
    prices = {}
    ch = C.Cheapest()
    assert ch.update(now, prices.get, None, version=0)
    assert list(ch.start) == [C.NONE] * 3  # no prices: no window
    assert not ch.update(now + 60, prices.get, None, version=0)  # same quarter, same prices
    prices.update({q: 10000 + q % 7 for q in range(now // 900, now // 900 + 96)})
    assert ch.update(now + 120, prices.get, None, version=1)  # prices arrived
    first = ch.start[0]
    assert first >= now // 900
    assert ch.update(first * 900 + 900, prices.get, None, version=1)  # past the window start
    assert ch.start[0] >= first + 1


def test_cheapest_includes_the_grid_fee_windows():
    now = _utc(2026, 6, 20, 6, 0)
    flat = {t: 12000 for t in range(now, now + 86400, 900)}
    fees = G.GridFees(8500, "4-9 Mo-So 10-16 -20%")
    ch = _check(flat, now, fees)
    assert _iso(ch.start[2]) == "2026-06-20T10:00:00+02:00"
    assert ch.avg_mct[2] == 12000 + 6800


# -- grid fees ---------------------------------------------------------------------------------
def test_grid_fee_windows_parse_and_match_local_time():
    fees = G.GridFees(8500, "4-9 Mo-So 10-16 6.8; 10-3 Sa,So * 7,2; 1-12 Mo-Fr 22-6 -10%")
    assert fees.n == 3
    # summer, 10:00 local (08:00 UTC) is in, 09:45 and 16:00 are not
    assert fees.fee(_utc(2026, 6, 17, 10, 0)) == 6800
    assert fees.fee(_utc(2026, 6, 17, 15, 45)) == 6800
    assert fees.fee(_utc(2026, 6, 17, 9, 45)) == 8500
    assert fees.fee(_utc(2026, 6, 17, 16, 0)) == 8500
    # a winter weekend day; a winter weekday night (over midnight, -10 %)
    assert fees.fee(_utc(2026, 12, 5, 12, 0)) == 7200  # Saturday
    assert fees.fee(_utc(2026, 12, 7, 12, 0)) == 8500  # Monday noon
    assert fees.fee(_utc(2026, 12, 7, 23, 30)) == 7650
    assert fees.fee(_utc(2026, 12, 8, 5, 45)) == 7650
    assert fees.fee(_utc(2026, 12, 8, 6, 0)) == 8500
    # the first of October (Thursday) is outside 4-9: base fee at 10:00
    assert fees.fee(_utc(2026, 10, 1, 10, 0)) == 8500
    # the window follows the clock change: 10:00 local is 08:00 UTC in April, 09:00 UTC in March
    assert fees.fee(_utc(2026, 4, 1, 10, 0)) == 6800
    assert fees.fee(_utc(2026, 4, 1, 10, 0) - 3600) == 8500
    assert not G.GridFees().active() and G.GridFees(1).active()


@pytest.mark.parametrize(
    "text,words",
    [
        ("4-9 Mo-So 10-16", "needs 4 fields"),
        ("13 * 10-16 5", "months must be"),
        ("4-9 Mo-Xx 10-16 5", "days must be"),
        ("4-9 * 10-16:10 5", "hours must be"),
        ("4-9 * 10-10 5", "hours must be"),
        ("4-9 * 25-3 5", "hours must be"),
        ("4-9 * 10-16 abc", "the fee must be"),
        ("4-9 * 10-16 20%", "percentage must be like -20%"),
        ("4-9 * 10-16 1.2345", "the fee must be"),
        ("; ".join(["* * * 1"] * 9), "more than 8 windows"),
    ],
)
def test_bad_grid_fee_windows_get_a_clear_error(text, words):
    with pytest.raises(ValueError) as info:
        G.parse(text, 8500)
    assert words in str(info.value)
    cfg = config.load({"GRID_FEE_WINDOWS": text}.get)
    assert cfg.GRID_FEE_WINDOWS == ""  # the default stays
    assert len(cfg.problems) == 1 and cfg.problems[0].startswith("GRID_FEE_WINDOWS ")
    assert words in cfg.problems[0]


def test_grid_fee_settings_load():
    env = {"GRID_FEE_CT_KWH": "8,5", "GRID_FEE_WINDOWS": " 4-9 Mo-So 10-16 -20% "}
    cfg = config.load(env.get)
    assert not cfg.problems
    assert cfg.GRID_FEE_CT_KWH == 8500 and cfg.GRID_FEE_WINDOWS == "4-9 Mo-So 10-16 -20%"
    cfg = config.load({"GRID_FEE_WINDOWS": "4-9 Mo-So 10-16 -20%"}.get)
    assert cfg.problems == [
        "GRID_FEE_WINDOWS has a percentage but GRID_FEE_CT_KWH is 0: set it, or give ct/kWh"
    ]


def test_grid_fee_windows_may_end_with_a_semicolon():
    text = "4-9 Mo-So 10-16 -20%; 10-3 Sa,So * 7,2;"
    assert len(G.parse(text, 8500)) == 2
    cfg = config.load({"GRID_FEE_CT_KWH": "8.5", "GRID_FEE_WINDOWS": text}.get)
    assert not cfg.problems and cfg.GRID_FEE_WINDOWS == text


def test_feed_in_at_the_market_without_day_ahead_prices_is_reported():
    """FEED_IN_DYNAMIC needs the day-ahead prices (PRICE_DYNAMIC): without them export would be
    credited at the fixed FEED_IN_CT_KWH (or not at all) and nothing would say why."""
    cfg = config.load({"FEED_IN_DYNAMIC": "true", "FEED_IN_FEE_CT_KWH": "1.2"}.get)
    assert cfg.problems == [
        "FEED_IN_DYNAMIC needs PRICE_DYNAMIC = true (the market prices come with the day-ahead"
        " prices)"
    ]
    cfg = config.load({"FEED_IN_DYNAMIC": "true", "PRICE_DYNAMIC": "true"}.get)
    assert not cfg.problems


# -- peaks ------------------------------------------------------------------------------------
def _month(epoch):
    y, m, _d = civil_from_days((epoch + eu_offset(epoch, 60) * 60) // 86400)
    return y * 12 + m - 1


def test_peaks_equal_a_brute_force_search_and_reset_at_the_local_month():
    rng = random.Random(7)
    start = _utc(2026, 11, 28)
    end = _utc(2026, 12, 3)
    peaks = P.Peaks()
    seen = []
    for t in range(start, end, 900):
        wh = rng.choice((rng.randint(0, 400), rng.randint(0, 2500), 1000))  # ties too
        peaks.add(t // 900, wh, _month(t))
        seen.append((t // 900, wh))
        month = _month(t)
        mine = [(s, w) for s, w in seen if _month(s * 900) == month]
        want = sorted(mine, key=lambda sw: (-sw[1], sw[0]))[:3]
        want += [(P.NONE, 0)] * (3 - len(want))
        assert list(peaks.w) == [w * 4 for _s, w in want]
        assert list(peaks.at) == [s for s, _w in want]
    # December began at 00:00 local = 23:00 UTC: the 23:xx UTC quarters of 30 Nov are December's
    assert all(_month(s * 900) == 2026 * 12 + 11 for s in peaks.at)
    assert peaks.peak(2026 * 12 + 10) is None


def test_a_quarter_booked_again_replaces_its_value_and_peaks_round_trip():
    peaks = P.Peaks()
    m = 2026 * 12 + 11
    t = _utc(2026, 12, 1, 18, 0) // 900
    assert peaks.add(t, 500, m)
    assert peaks.add(t + 1, 300, m)
    assert peaks.add(t, 200, m)  # the same quarter, rebooked after a restart
    assert list(peaks.w) == [1200, 800, 0] and list(peaks.at) == [t + 1, t, P.NONE]
    assert not peaks.add(t - 96 * 40, 9999, m - 1)  # an older month never enters
    other = P.Peaks()
    other.from_words(peaks.to_words())
    assert other.to_words() == peaks.to_words()
    with pytest.raises(ValueError):
        other.from_words([m, -5, 0, 0, 0, 0, 0])


def test_projection_of_the_open_quarter():
    assert P.projection(0, 10, 4000) == (None, (4000 * 890 + 450) // 900)  # 10 s in: power
    running, projected = P.projection(500, 300, 2000)  # 500 Wh in 5 min = 6 kW so far
    assert running == 6000
    assert projected == (500 * 3600 + 2000 * 600) // 900  # = 3333 W
    assert P.projection(1000, 900, 0) == (4000, 4000)  # closed: exactly Wh x 4


# -- under the MicroPython VM -----------------------------------------------------------------
_VM_SCRIPT = """
import gc
from smartmeter.datalog.cheapest import Cheapest
from smartmeter.datalog.gridfee import GridFees
from smartmeter.datalog.peaks import Peaks, projection
def build():
    return Cheapest(), GridFees(8500, "4-9 Mo-So 10-16 -20%; 10-3 Sa,So * 7,2"), Peaks()
sizes = []
for k in range(2):  # the first build also interns the parser's strings for good
    gc.collect()
    before = gc.mem_alloc()
    ch, fees, peaks = build()
    gc.collect()
    sizes.append(gc.mem_alloc() - before)
    if not k:
        ch = fees = peaks = None
print("bytes", sizes[0], sizes[1])
prices = {}
seed = 12345
for q in range(1782000000 // 900, 1782000000 // 900 + 200):
    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
    prices[q] = seed % 40000 - 2000
get = prices.get
for k, now in enumerate((1782000000, 1782000000 + 5000, 1782000000 + 40000)):
    ch.update(now, get, fees, k)
    print("win", list(ch.start), list(ch.avg_mct))
for q in range(3000):
    peaks.add(1980000 + q, (q * 7919) % 2600, 24317 + q // 2900)
print("peaks", peaks.to_words())
print("proj", projection(500, 300, 2000))
gc.collect()
before = gc.mem_alloc()
for q in range(50):
    peaks.add(1980000 + q, q, 24318)
print("alloc", gc.mem_alloc() - before)
"""


def test_the_pure_parts_run_under_micropython_alike(run_micropython, require):
    """The CircuitPython VM gives the same windows and peaks as CPython, and a small heap."""
    from mpy import micropython_available

    ok, why = micropython_available()
    require(ok, why)
    files = [
        (p, p)
        for p in (
            "smartmeter/__init__.py",
            "smartmeter/timeutil.py",
            "smartmeter/datalog/__init__.py",
            "smartmeter/datalog/cheapest.py",
            "smartmeter/datalog/gridfee.py",
            "smartmeter/datalog/peaks.py",
        )
    ]
    rc, out, err = run_micropython(_VM_SCRIPT, files=files)
    assert rc == 0, out + err
    lines = out.strip().splitlines()
    first, heap = int(lines[0].split()[1]), int(lines[0].split()[2])
    # 96 + 3 + 3 int32 (cheapest), 40 int32 (8 grid-fee windows), 6 int32 (peaks), 3 objects:
    # 912 bytes under the board-like CircuitPython VM; this (wasm) VM's GC keeps more
    assert 4 * (102 + 40 + 6) <= heap <= 5000, heap
    assert first <= 6000, first
    ch = C.Cheapest()
    fees = G.GridFees(8500, "4-9 Mo-So 10-16 -20%; 10-3 Sa,So * 7,2")
    prices = {}
    seed = 12345
    for q in range(1782000000 // 900, 1782000000 // 900 + 200):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        prices[q] = seed % 40000 - 2000
    for k, now in enumerate((1782000000, 1782000000 + 5000, 1782000000 + 40000)):
        ch.update(now, prices.get, fees, k)
        assert lines[1 + k] == "win %r %r" % (list(ch.start), list(ch.avg_mct))
    peaks = P.Peaks()
    for q in range(3000):
        peaks.add(1980000 + q, (q * 7919) % 2600, 24317 + q // 2900)
    assert lines[4] == "peaks %r" % (peaks.to_words(),)
    assert lines[5] == "proj (6000, 3333)"
    assert lines[6] == "alloc 0"  # booking a quarter allocates nothing
    print("cheapest + grid fees + peaks under the VM: %d bytes of heap (first %d)" % (heap, first))


# -- through the real loop: a summer day with the low-rate window ---------------------------
GRID = "8.5"  # ct/kWh outside the window
WINDOW = "4-9 Mo-So 10-16 -20%"  # the 2026 Austrian summer low rate


def _vienna_fee(q):
    """The fee of quarter ``q`` by the operator's rule, from zoneinfo (not our calendar code)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    t = datetime.fromtimestamp(q * 900, UTC).astimezone(ZoneInfo("Europe/Vienna"))
    return 6800 if 4 <= t.month <= 9 and 10 <= t.hour < 16 else 8500


def _summer_day(tmp_path, ymd=(2026, 6, 25), hours=None):
    from sim.hardware import ManualClock
    from sim.run import Simulation
    from smartmeter.datalog import usage as U
    from smartmeter.timeutil import days_from_civil

    day = days_from_civil(*ymd)
    u0 = U.Usage()
    start = u0.day_start(day) - 1200
    end = u0.day_start(day + 1) + 600 if hours is None else u0.day_start(day) + hours * 3600
    values = {
        "METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB",
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "PRICE_CT_KWH": "24.5",
        "GRID_FEE_CT_KWH": GRID,
        "GRID_FEE_WINDOWS": WINDOW,
    }
    clock = ManualClock(start_epoch=start)
    sim = Simulation(
        values, data_dir=str(tmp_path / "data"), clock=clock, display="none", quiet=True, web=False
    )
    while clock.epoch < end:
        sim.step()
        clock.advance(53 * 1000)  # quarter boundaries fall between telegrams
    for _ in range(3):
        sim.step()
    return sim, day


def _csv_quarters(sim):
    """Quarter energies from the CSV the loop wrote: register differences, booked to the
    quarter of the later telegram."""
    from smartmeter.datalog.csvlog import read_rows
    from smartmeter.protocol.reading import A_PLUS

    rows = []
    for name in sim.app.storage.log_files():
        for epoch, v in read_rows(sim.app.storage, name):
            rows.append((epoch, v[A_PLUS]))
    rows.sort()
    out = {}
    for (_t0, a0), (t1, a1) in zip(rows, rows[1:]):
        out[t1 // 900] = out.get(t1 // 900, 0) + a1 - a0
    return out


def test_a_summer_day_with_a_grid_fee_window_and_its_peaks(tmp_path):
    from smartmeter.datalog import usage as U

    sim, day = _summer_day(tmp_path)
    u = sim.app.state.usage
    assert not sim.app.config.problems
    csv = _csv_quarters(sim)
    first = u.day_start(day) // 900
    last = u.day_start(day + 1) // 900
    day_grid = day_cost = 0
    low = 0
    for q in range(first, last):
        imp = u.quarter(q)[0]
        assert imp == csv[q], q
        fee, grid = u.quarter_grid(q)
        assert fee == _vienna_fee(q), q  # the window's fee, local time
        assert grid == (imp * fee + 500) // 1000, q  # its energy x that fee
        low += fee == 6800
        day_grid += grid
        day_cost += u.quarter(q)[2]
    assert low == 24  # 10:00-16:00: 24 quarters
    for h in range(first // 4, last // 4):
        assert u.grid_part(u.hours, h) == sum(u.quarter_grid(q)[1] for q in range(h * 4, h * 4 + 4))
    assert u.grid_part(u.days, day) == day_grid
    assert u.period(u.days, day)[2] == day_cost  # the energy part stays apart
    # the month's peaks: a brute-force search over the quarter energies of June (local)
    june = [(q, wh) for q, wh in csv.items() if _month(q * 900) == 2026 * 12 + 5]
    # the open quarter (the last telegram's) is not booked yet
    top = sorted(
        [(q, wh) for q, wh in june if q < u.last_epoch // 900], key=lambda qw: (-qw[1], qw[0])
    )[:3]
    assert list(u.peaks.at) == [q for q, _wh in top]
    assert list(u.peaks.w) == [wh * 4 for _q, wh in top]
    # the cheapest hours with a fixed price: inside the low-rate window
    outlook = sim.app.tariff.outlook
    outlook.refresh(u.day_start(day) + 6 * 3600)
    assert [iso_local(q * 900)[11:16] for _h, q, _a in outlook.windows()] == ["10:00"] * 3
    # the summary on the card keeps the grid parts and the peaks
    sink = sim.app.usage
    sink.save()
    from smartmeter.datalog import usagefile as UF
    from smartmeter.datalog.usagelog import SLOT_PATHS

    files = []
    for path in SLOT_PATHS:
        try:
            files.append(sim.fs.open(path, "rb").read())
        except OSError:
            pass
    data = max(files, key=UF.peek)
    again = U.Usage(u.tariff)
    UF.from_bytes(again, data)
    assert again.peaks.to_words() == u.peaks.to_words()
    assert again.grid_part(again.days, day) == u.grid_part(u.days, day)
    print(
        "summer day: %d quarters, %d in the low-rate window, grid %.2f ct, energy %.2f ct; "
        "peaks %s W" % (last - first, low, day_grid / 1000, day_cost / 1000, list(u.peaks.w))
    )


def test_the_api_shows_energy_and_grid_parts_apart_and_the_outlook(tmp_path):
    import json

    from smartmeter.web import usageapi

    sim, day = _summer_day(tmp_path, hours=13)  # up to 13:00: in the low-rate window
    st = sim.app.state
    u = st.usage
    got = json.loads("".join(usageapi.json_chunks(st, "quarter")))
    rows = [r for r in got["rows"] if r["import_wh"] is not None]
    assert len(rows) > 50
    for r in rows:
        q = r["start"] // 900
        fee, grid = u.quarter_grid(q)
        assert r["grid_fee_ct_kwh"] * 1000 == fee == _vienna_fee(q)
        assert round(r["grid_ct"] * 1000) == grid == (r["import_wh"] * fee + 500) // 1000
        assert round(r["cost_ct"] * 1000) == u.quarter(q)[2]  # the energy part, apart
    later = [r for r in got["rows"] if r.get("future")]
    assert later and all(r["grid_fee_ct_kwh"] in (6.8, 8.5) for r in later)
    hours = json.loads("".join(usageapi.json_chunks(st, "hour")))
    for r in hours["rows"]:
        if r["import_wh"] is not None:
            assert round(r["grid_ct"] * 1000) == u.grid_part(u.hours, r["start"] // 3600)
    out = got["outlook"]
    assert [w["hours"] for w in out["cheapest"]] == [1, 2, 3]
    # now is in the window: the cheapest hours start now (this quarter), 3 h to 16:00 at most
    now_q = u.last_epoch // 900
    assert out["cheapest"][0]["start"] == now_q * 900
    assert out["cheapest"][0]["avg_ct_kwh"] == 24.5 + 6.8
    assert out["grid_fee"] == {"ct_kwh": 8.5, "windows": 1, "now_ct_kwh": 6.8}
    assert out["peaks"]["month"] == "2026-06"
    assert [p["w"] for p in out["peaks"]["top"]] == list(u.peaks.w)
    assert out["peaks"]["quarter_projected_w"] is not None
    csv = "".join(usageapi.csv_chunks(st, "quarter")).split("\r\n")
    assert csv[0].split(";")[9:11] == ["Netzentgelt [ct/kWh]", "Netzkosten [EUR]"]
    csv = "".join(usageapi.csv_chunks(st, "day")).split("\r\n")
    assert csv[0].split(";")[4:6] == ["cost EUR", "grid EUR"]
    assert all(len(line.split(";")) == 9 for line in csv[:-1])


# -- Home Assistant: through the real loop and a real broker --------------------------------
@pytest.fixture
def broker(tmp_path):
    from mosquitto import mosquitto_broker

    with mosquitto_broker(tmp_path / "broker") as b:
        yield b


HA_OBJECTS = (
    "cheapest_1h_start",
    "cheapest_2h_start",
    "cheapest_3h_start",
    "peak_month",
    "peak_month_2",
    "peak_month_3",
    "peak_month_time",
    "peak_month_2_time",
    "peak_month_3_time",
    "demand_quarter",
    "demand_quarter_projected",
)


def test_cheapest_windows_and_peaks_reach_home_assistant(broker, tmp_path):
    """The app loop with MQTT on: the cheapest windows as timestamp sensors (local ISO 8601 with
    offset), the month's peaks and the quarter now as kW, announced by discovery."""
    import json

    from test_mqtt import Listener
    from test_usage import mqtt_minutes

    listener = Listener(broker)
    try:
        start = _utc(2026, 6, 20, 21, 0)  # a June evening; the low-rate window: tomorrow 10:00
        settings = {"PRICE_CT_KWH": "24.5", "GRID_FEE_CT_KWH": GRID, "GRID_FEE_WINDOWS": WINDOW}
        app, meter, _first, states = mqtt_minutes(  # 80 minutes: five quarters close
            broker, listener, start, 80, settings, ("peak_month", "cheapest_3h_start")
        )
        assert states, listener.snapshot()[-5:]
        last = states[-1]
        assert last["cheapest_1h_start"] == "2026-06-21T10:00:00+02:00"
        assert last["cheapest_3h_start"] == "2026-06-21T10:00:00+02:00"
        u = app.state.usage
        assert last["peak_month"] * 1000 == u.peaks.w[0]
        assert last["peak_month_time"] == iso_local(u.peaks.at[0] * 900)
        assert "demand_quarter_projected" in last
        configs = listener.configs()
        prefix = "homeassistant/sensor/smartmeter_%s/" % meter.meter_number
        listing = []
        for oid in HA_OBJECTS:
            cfg_, _retained = configs[prefix + oid + "/config"]
            listing.append(
                "%-26s %-34s %-10s %-4s %s"
                % (
                    oid,
                    cfg_["name"],
                    cfg_.get("device_class", "-"),
                    cfg_.get("unit_of_measurement", "-"),
                    json.dumps(last.get(oid)),
                )
            )
            if oid.endswith(("_start", "_time")):
                assert cfg_["device_class"] == "timestamp" and "unit_of_measurement" not in cfg_
            else:
                assert cfg_["device_class"] == "power" and cfg_["unit_of_measurement"] == "kW"
        print("\n".join(listing))
    finally:
        listener.close()


def test_grid_fee_windows_from_the_web_settings_page():
    """Pasted into the settings form: checked as settings.toml is, the error names the window
    and the field, nothing is saved; a good text is saved as typed."""
    from smartmeter.web import api

    merged, changed, problems = api.apply_settings(
        {"GRID_FEE_CT_KWH": "8,5", "GRID_FEE_WINDOWS": "4-9 Mo-Xx 10-16 -20%"}, {}
    )
    assert problems == [
        "GRID_FEE_WINDOWS window 1 (4-9 Mo-Xx 10-16 -20%): days must be Mo Di Mi Do Fr Sa So,"
        " a range like Mo-Fr, or *"
    ]
    merged, changed, problems = api.apply_settings(
        {"GRID_FEE_CT_KWH": "8,5", "GRID_FEE_WINDOWS": " 4-9 Mo-So 10-16 -20% "}, {}
    )
    assert not problems and merged["GRID_FEE_WINDOWS"] == "4-9 Mo-So 10-16 -20%"
    assert sorted(changed) == ["GRID_FEE_CT_KWH", "GRID_FEE_WINDOWS"]
    shown = __import__("json").loads(api.settings_json(config.load({}.get, merged)))
    assert shown["values"]["GRID_FEE_CT_KWH"] == "8.5"


@pytest.mark.parametrize(
    ("extra", "made"),
    [
        ({}, False),  # a fixed price: no cheapest time can exist
        ({"GRID_FEE_CT_KWH": GRID, "GRID_FEE_WINDOWS": WINDOW}, True),  # the fee varies
        ({"PRICE_DYNAMIC": "true"}, True),  # day-ahead prices
        ({"MQTT_HOST": "127.0.0.1", "MQTT_PORT": 1}, True),  # Home Assistant gets the outlook
    ],
)
def test_the_cheapest_search_is_made_only_where_prices_can_vary(tmp_path, extra, made):
    # datalog/outlook.py and cheapest.py cost ~4 KB of the board's heap: a board whose price
    # never varies through the day has no cheapest time to find (the TFT says "no prices")
    from sim.hardware import ManualClock
    from sim.run import Simulation

    values = {"METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB", "PRICE_CT_KWH": "24.5"}
    values.update(extra)
    clock = ManualClock(start_epoch=_utc(2026, 6, 25))
    sim = Simulation(
        values, data_dir=str(tmp_path / "d"), clock=clock, display="none", quiet=True, web=False
    )
    assert not sim.app.config.problems
    assert (sim.app.tariff.outlook is not None) is made
