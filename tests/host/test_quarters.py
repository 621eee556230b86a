"""Quarter hours (smartmeter/datalog/usage.py, outputs/prices.py): energy, prices and cost per
15 minutes through the real loop.

A simulated day runs through ``sim.run.Simulation`` with a manual clock (a telegram every 53 s,
so quarter boundaries fall between telegrams), with day-ahead prices from an answer that mixes
60- and 15-minute items, and market-based feed-in. Then, against the CSV the same loop wrote:
every quarter's energy is the register difference between the last telegrams before its
boundaries, every quarter's cost is its energy x its own gross price, every hour's cost is the
sum of its quarters, the day's the sum of its quarters. The same for the clock-change days (92
and 100 quarters), and for a day with a power cut (the reader reboots and loads its quarters
from the card) and a meter replacement.
"""

import json
from fractions import Fraction

import pytest
from test_usage import _expected as expected

from sim.hardware import ManualClock
from sim.run import Simulation
from smartmeter.datalog import market as M
from smartmeter.datalog import usage as U
from smartmeter.datalog import usagefile as UF
from smartmeter.datalog.csvlog import read_rows
from smartmeter.outputs.prices import Scanner, quarters
from smartmeter.protocol.reading import A_MINUS, A_PLUS
from smartmeter.timeutil import days_from_civil

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
STEP = 53  # s between telegrams
MARKUP, VAT, FEE = "1.44", "20", "1.2"  # ct/kWh net, %, ct/kWh off the market for feed-in


def market(q):
    """EUR/MWh of UTC quarter ``q``: differs every quarter, some negative, 2 decimals."""
    return Fraction(((q * 7919) % 26000) - 3000, 100)


def answer(first_q, last_q):
    """aWATTar-style JSON: even UTC hours as one 60-minute item (the price of its first
    quarter), odd hours as four 15-minute items."""
    data = []
    for h in range(first_q // 4, last_q // 4 + 1):
        if h % 2 == 0:
            items = [(h * 3600, 3600, market(h * 4))]
        else:
            items = [((h * 4 + k) * 900, 900, market(h * 4 + k)) for k in range(4)]
        for start, dur, price in items:
            data.append(
                {
                    "start_timestamp": start * 1000,
                    "end_timestamp": (start + dur) * 1000,
                    "marketprice": float(price),
                    "unit": "Eur/MWh",
                }
            )
    return json.dumps({"object": "list", "data": data}).encode()


def price_of(q):
    """The market price the answer gives quarter ``q`` (an even hour: its first quarter's)."""
    h = q // 4
    return market(h * 4) if h % 2 == 0 else market(q)


def gross_mct(q):
    """The bill's price of quarter ``q``, mct/kWh: (EUR/MWh / 10 + markup) * (1 + VAT)."""
    ct = (price_of(q) / 10 + Fraction(MARKUP)) * (1 + Fraction(VAT) / 100)
    return _round(ct * 1000)


def feed_mct(q):
    return _round(price_of(q) * 100) - _round(Fraction(FEE) * 1000)


def _round(x):
    """Half away from zero, as the firmware rounds."""
    n = int(abs(x) + Fraction(1, 2))
    return n if x >= 0 else -n


def _cost(wh, price):
    return _round(Fraction(wh * price, 1000))


def _sim(tmp_path, values, clock):
    return Simulation(
        values, data_dir=str(tmp_path / "data"), clock=clock, display="none", quiet=True, web=False
    )


def run_day(tmp_path, y, m, d, cut=None, swap=None, late=False, fixed=True):
    """A local day (from 23:40 the day before to 00:10 after) through the real loop. ``cut``:
    ``(local seconds, length)``: the power goes off (no telegrams) and the reader boots again on
    the same card; ``swap``: local seconds when the meter is replaced (counters from 0);
    ``late``: after the boot the prices arrive only once the catch-up from the CSV has closed
    quarters (as on the board: the fetch needs the network); ``fixed``: fixed prices
    (``PRICE_CT_KWH``, ``FEED_IN_CT_KWH``) for when no day-ahead price is known."""
    day = days_from_civil(y, m, d)
    u0 = U.Usage()
    start = u0.day_start(day) - 1200  # 23:40 the day before
    end = u0.day_start(day + 1) + 600
    values = {
        "METER_KEY": KEY,
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "PRICE_MARKUP_CT_KWH": MARKUP,
        "PRICE_VAT_PERCENT": VAT,
        "FEED_IN_DYNAMIC": True,
        "FEED_IN_FEE_CT_KWH": FEE,
        "PRICE_DYNAMIC": True,
    }
    if fixed:
        values.update(PRICE_CT_KWH="30", FEED_IN_CT_KWH="7")
    clock = ManualClock(start_epoch=start)
    sim = _sim(tmp_path, values, clock)
    scanner = Scanner()
    body = answer(start // 900, end // 900)
    for i in range(0, len(body), 512):  # streamed as the fetch does
        scanner.feed(body[i : i + 512])
    got = quarters(scanner.items)
    sim.app.tariff.set_market(got)
    midnight = u0.day_start(day)
    while clock.epoch < end:
        if cut is not None and clock.epoch >= midnight + cut[0]:
            clock.advance(cut[1] * 1000)  # no power: no telegrams, the meter counts nothing
            meter = sim.meter
            meter._last_epoch = clock.epoch
            sim.close()
            sim = _sim(tmp_path, values, clock)  # the reader boots again, same card
            sim.meter = meter
            if not late:
                sim.app.tariff.set_market(got)  # (fetched again after a boot)
            while sim.app.usage.replaying:
                sim.step()
            if late:
                sim.app.tariff.set_market(got)
            assert sim.app.usage.loaded_from in ("usage-a.bin", "usage-b.bin")
            cut = None
        if swap is not None and clock.epoch >= midnight + swap:
            sim.meter.a_plus_wh = sim.meter.a_minus_wh = 0  # a new meter, counting from 0
            swap = None
        sim.step()
        clock.advance(STEP * 1000)
    for _ in range(3):
        sim.step()
    rows = []
    for name in sim.app.storage.log_files():
        for epoch, v in read_rows(sim.app.storage, name):
            rows.append((epoch, v[A_PLUS], v[A_MINUS]))
    rows.sort()
    return sim, day, rows


def check_day(sim, day, rows, n_quarters):
    u = sim.app.state.usage
    assert len(rows) > 1500
    first = u.day_start(day) // 900
    last = u.day_start(day + 1) // 900 - 1
    assert last - first + 1 == n_quarters
    want = expected(rows, lambda t: t // 900)  # as test_usage counts hours and days
    # the register at each boundary: the last CSV row before it
    at = {}
    for t, a, e in rows:
        at[t // 900 + 1] = (a, e)  # the last row before the end of quarter t // 900
    broken = set()  # quarters where a gap or a meter change begins or ends
    for (t0, a0, e0), (t1, a1, e1) in zip(rows, rows[1:]):
        if t1 - t0 > U.GAP_S or a1 < a0:
            broken.update((t0 // 900, t1 // 900))
    day_cost = day_credit = 0
    exported = 0
    for q in range(first, last + 1):
        got = u.quarter(q)
        if q not in want and q not in broken:
            assert got is None, q  # no telegram in it: no row, never 0
            continue
        imp, exp, cost, credit, flags, price, feed = got
        assert (imp, exp) == want.get(q, (0, 0)), q
        if q not in broken:
            assert (imp, exp) == (at[q + 1][0] - at[q][0], at[q + 1][1] - at[q][1])
            assert flags >> 8 >= U.FULL_Q_S  # covered by telegrams (not partial)
            assert not flags & (U.GAP | U.JUMP)
        else:
            assert flags & U.GAP, q
        assert price == gross_mct(q) and feed == feed_mct(q), q
        assert cost == _cost(imp, price) and credit == _cost(exp, feed), q
        assert flags & U.DYNAMIC and flags & U.FEED_DYNAMIC
        day_cost += cost
        day_credit += credit
        exported += exp
    for h in range(first // 4, last // 4 + 1):
        hour = u.period(u.hours, h)
        qs = [u.quarter(q) for q in range(h * 4, h * 4 + 4) if u.quarter(q) is not None]
        if hour is None:
            assert not qs
            continue
        assert hour[0] == sum(r[0] for r in qs) and hour[1] == sum(r[1] for r in qs)
        assert hour[2] == sum(r[2] for r in qs), h  # the hour's cost: its quarters', exactly
        assert hour[3] == sum(r[3] for r in qs), h
    got = u.period(u.days, day)
    assert (got[2], got[3]) == (day_cost, day_credit)  # all the day's cost is in its quarters
    if not broken:
        assert got[0] == sum(u.quarter(q)[0] for q in range(first, last + 1))
    assert exported > 0 and day_credit != 0  # the PV exported, credited at the market
    return u, broken


@pytest.mark.parametrize(
    "ymd,n",
    [((2026, 6, 25), 96), ((2026, 3, 29), 92), ((2026, 10, 25), 100)],
    ids=["summer-96", "spring-forward-92", "fall-back-100"],
)
def test_a_day_of_quarters_through_the_real_loop(tmp_path, ymd, n):
    sim, day, rows = run_day(tmp_path, *ymd)
    u, broken = check_day(sim, day, rows, n)
    assert not broken
    # the card's copy (saved when hours close) has the quarters; loaded it gives the same rows
    sink = sim.app.usage
    sink.save()
    path = U_SLOT(sink)
    data = sim.fs.open(path, "rb").read()
    again = U.Usage(u.tariff)
    UF.from_bytes(again, data)
    first = u.day_start(day) // 900
    for q in range(first, first + n):
        assert again.quarter(q) == u.quarter(q), q


def test_power_cut_reboot_and_new_meter_in_the_quarters(tmp_path):
    """A 40-minute power cut at 10:07 (the reader boots again and catches up from the card and
    the CSV) and a new meter at 15:31 (counters from 0): the quarters in the cut have no row,
    the ones at its edges and at the swap are flagged, every other quarter is still the CSV's
    register difference, priced at its own price; hours still sum their quarters."""
    sim, day, rows = run_day(
        tmp_path, 2026, 6, 25, cut=(10 * 3600 + 7 * 60, 40 * 60), swap=15 * 3600 + 31 * 60
    )
    u, broken = check_day(sim, day, rows, 96)
    first = u.day_start(day) // 900
    missing = [q for q in range(first, first + 96) if u.quarter(q) is None]
    assert len(missing) >= 2  # 10:15-10:45 had no telegram at all
    assert len(broken) == 3  # the quarters where the cut begins and ends, and the swap
    jumps = [q for q in broken if u.quarter(q)[4] & U.JUMP]
    assert len(jumps) == 1 and u.jumps == 1
    assert u.quarter(jumps[0])[0] < 5000  # no spike from the old counter


@pytest.mark.parametrize(
    "fixed", [True, False], ids=["fixed-price-meanwhile", "no-price-meanwhile"]
)
def test_prices_arriving_after_the_boot_reprice_the_quarters_closed_before(tmp_path, fixed):
    """The reader boots at 11:05 after a 15-minute cut; the catch-up from the CSV closes the
    quarters since the last save (10:00) before the day-ahead prices are fetched again. When
    they arrive, those quarters are costed at their own day-ahead prices (not the fixed price,
    not 'unknown'), and the day and the month have a cost again."""
    sim, day, rows = run_day(
        tmp_path, 2026, 6, 25, cut=(10 * 3600 + 50 * 60, 15 * 60), late=True, fixed=fixed
    )
    u, _broken = check_day(sim, day, rows, 96)
    for ring, key in (
        (u.hours, u.day_start(day) // 3600 + 9),
        (u.days, day),
        (u.months, U.month_of_day(day)),
    ):
        flags = u.period(ring, key)[4]
        assert not flags & (U.NOPRICE | U.NOFEED), (key, flags)
        assert flags & U.DYNAMIC


def U_SLOT(sink):
    from smartmeter.datalog.usagelog import SLOT_PATHS

    return SLOT_PATHS[sink._good]


def test_mixed_answer_gives_each_quarter_its_own_price():
    items = [
        (3600 * 10, 3600 * 11, 100_000),  # an hour
        (3600 * 11, 3600 * 11 + 900, 1_000),  # then quarters
        (3600 * 11 + 900, 3600 * 11 + 1800, -2_500),
        (3600 * 11 + 1800, 3600 * 11 + 3600, 50_000),  # half an hour
        (3600 * 12, 3600 * 13, 7_000),  # an hour, and a finer quarter inside it wins
        (3600 * 12 + 1800, 3600 * 12 + 2700, 9_000),
        (3600 * 13 + 60, 3600 * 13 + 960, 1),  # off the quarter grid: skipped
        (3600 * 14, 3600 * 16, 1),  # two hours: skipped
    ]
    got = dict(quarters(items))
    assert [got[q] for q in range(40, 44)] == [100_000] * 4
    assert [got[q] for q in range(44, 48)] == [1_000, -2_500, 50_000, 50_000]
    assert [got[q] for q in range(48, 52)] == [7_000, 7_000, 9_000, 7_000]
    assert set(got) == set(range(40, 52))
    t = M.MarketTariff(markup_mct=0, vat_mpct=0, feed_in_dynamic=True, feed_in_fee_mct=500)
    t.set_market(sorted(got.items()))
    assert t.market_quarters() == 12 and t.market_hours() == 3
    assert t.import_q(45) == (-250, True) and t.export_q(45) == (-750, True)
    assert t.import_q(52) == (None, False) and t.export_q(52) == (None, False)
    assert t.dynamic(12) == 7_500 // 10  # the hour's mean: (700 * 3 + 900) / 4


def test_a_summary_from_before_quarters_still_loads():
    u = U.Usage(U.Tariff(price_mct=30_000))
    t = 1_780_000_000
    for k in range(200):
        u.add(t + 60 * k, 1000 + 5 * k, 0)
    new = UF.to_bytes(u)
    # the old layout: "SMU1", sizes without quarters, hours + days + months of 6 fields only
    rings = bytearray()
    for ring in (u.hours, u.days, u.months):
        rings += U._i32(ring.count) + U._i32(ring.head)
        for row in range(ring.size):
            rings += bytes(ring.data[row * U._FIELDS : row * U._FIELDS + 6])
    rings = bytes(rings)
    head = bytearray(b"SMU1") + U._i32(U.HOURS << 16 | U.DAYS << 8 | U.MONTHS) + new[8:28]
    old = bytes(head) + U._i32(UF.checksum(rings)) + rings
    v = U.Usage(u.tariff)
    UF.from_bytes(v, old)
    assert v.quarters.count == 0 and v.period(v.hours, (t + 3600) // 3600) == u.period(
        u.hours, (t + 3600) // 3600
    )
    with pytest.raises(ValueError):
        UF.from_bytes(v, old[:-1])


@pytest.mark.parametrize("gap", [False, True], ids=["no-gap", "gap"])
def test_prices_arriving_later_clear_no_price_unless_energy_is_in_no_quarter(gap):
    """Quarters closed without a price (import only: no PV) are costed when the prices arrive;
    their hour, day and month lose 'no price'. Energy across a gap belongs to its day but to no
    quarter: it stays unpriced, so its day and month keep 'no price'; the hours lose it."""
    u = U.Usage(M.MarketTariff())
    t0 = 1_782_374_400  # 2026-06-25 10:00 CEST
    wh = 1000
    times = list(range(t0, t0 + 3600, 60))
    if gap:
        times = [t for t in times if not t0 + 1740 < t < t0 + 2700]
    for t in times:
        u.add(t, wh, 0)
        wh += 5
    day = u.day_key(t0)
    month = U.month_of_day(day)
    assert u.period(u.days, day)[4] & U.NOPRICE and u.period(u.months, month)[4] & U.NOPRICE
    u.tariff.set_market([(q, 100_000) for q in range(t0 // 900 - 8, t0 // 900 + 16)])
    u.add(t0 + 3600, wh, 0)
    qs = [u.quarter(q) for q in range(t0 // 900, t0 // 900 + 4) if u.quarter(q)]
    assert len(qs) == (3 if gap else 4)  # with the gap 10:30-10:45 had no telegram
    for row in qs:
        assert row[5] == 10_000 and row[2] == U.cost_mct(row[0], 10_000) and row[4] & U.DYNAMIC
    hour = u.period(u.hours, t0 // 3600)
    assert not hour[4] & U.NOPRICE and hour[2] == sum(r[2] for r in qs) > 0
    for ring, key in ((u.days, day), (u.months, month)):
        flags = u.period(ring, key)[4]
        assert bool(flags & U.NOPRICE) == gap  # the gap's Wh have no price
        assert flags < 256  # the count is not shown
