# SPDX-License-Identifier: MIT
"""Energy per quarter hour, hour, day and month from the meter's own registers, with cost. Pure.

What it counts: the differences of the energy registers A+ (import) and A- (export) between
consecutive telegrams, never integrated power. A difference is booked to the quarter hour (UTC
``epoch // 900``), the hour (UTC hour), the local day and the local month of the later telegram.
So a quarter's energy is the register of the last telegram before its end minus the register of
the last telegram before its start (the meter's own 15-minute load profile, read at the
boundaries), the four quarters of an hour add up to the hour and the hours of a day to the
register difference over that day, to the Wh.

What it does not count, and shows instead:

- **Gaps.** Two telegrams more than ``GAP_S`` apart (reader off, power cut, cable pulled): the
  difference across the gap belongs to no quarter and no hour - those in between have no row and
  are shown as gaps, not as zero. It still belongs to the day when both telegrams are on the same
  local day (the day total then stays the meter's), and the day, hour and quarter are flagged
  ``GAP``.
- **Counter jumps.** A register that goes backwards (meter replaced, counter restarts at 0) or
  rises faster than ``MAX_W`` could explain: the difference is dropped, counted in ``jumps``,
  and the next difference counts from the new value. No spike. A register only a little lower
  (``BACK_WH``) is a glitch, not a meter change: that telegram is skipped (``backwards``), not
  counted as a jump, and the next one counts from the last good value.
- **DST.** Quarters and hours are UTC, so the 92- and 100-quarter (23- and 25-hour) local days
  just have fewer or more rows; days and months are local (the meter's EU rule,
  ``std_offset_min`` + summer time).

Cost, quarter by quarter: when a quarter closes (the first telegram of a later quarter), its
import is priced with the gross price of *that quarter* (the day-ahead price if known, else the
fixed ``PRICE_CT_KWH``) and its export with the feed-in price of that quarter (fixed
``FEED_IN_CT_KWH``, or with ``FEED_IN_DYNAMIC`` the market price minus ``FEED_IN_FEE_CT_KWH``).
The quarter keeps both prices; its cost is ``cost_mct(energy, price)``, and that same integer is
added to its hour, day and month: an hour's cost is exactly the sum of its quarters' costs, a
day's the sum of its hours'. Prices are integers in milli-cent per kWh, costs in milli-cent
(1/1000 ct), energies in Wh: no float anywhere, so sums are exact.

Reading quarters (for other parts; the quarter ring keeps the last ``QUARTERS`` = 200 quarters,
50 hours: all of yesterday and today even on a 25-hour day)::

    q = epoch // 900                        # a quarter's key: UTC epoch // 900
    usage.quarter(q)                        # (imp_wh, exp_wh, cost_mct, credit_mct, flags,
                                            #  price_mct_kwh, feed_mct_kwh) or None (no data)
    usage.tariff.import_q(q)                # (gross mct/kWh, dynamic) or (None, False)
    usage.tariff.export_q(q)                # (mct/kWh, dynamic) or (None, False)

``cost_mct``/``credit_mct`` are None when the quarter's price is unknown (flags ``NOPRICE`` /
``NOFEED``). Day-ahead prices that arrive after a quarter closed (after a boot the catch-up from
the CSV closes quarters before the fetch) cost it again at its own price
(``market.MarketTariff.reprice``: the day-ahead prices live in ``market.py``, which only a board
with ``PRICE_DYNAMIC`` loads). The quarter still open (the one of the latest telegram) is priced
as of now. ``flags >> 8`` is the seconds of the quarter covered by telegrams (900 = all).

Grid fees (``tariff.fees``, a ``gridfee.GridFees``; ``GRID_FEE_CT_KWH``/``GRID_FEE_WINDOWS``):
when a quarter closes, its grid part is its import x the fee of that quarter (the window it
falls in, local time); the quarter keeps the fee (``Q_GRID``), its hour, day and month add the
grid part (``GRID``), apart from the energy cost (``COST``)::

    usage.quarter_grid(q)                   # (fee_mct_kwh, grid_mct) or None (no grid fees)
    usage.grid_part(ring, key)              # grid part of any row (mct), None without fees

Peaks: each closed quarter's import goes to ``self.peaks`` (``peaks.Peaks``, the local month's
three highest quarter demands), saved with the rest.

Memory (bounded, fixed at start): four rings of ``_FIELDS`` (7) int32 (``array("i")``) per row -
200 quarters, 72 hours, 32 days, 13 months - ``(200 + 72 + 32 + 13) * 7 * 4 = 8876`` bytes of
arrays and the peaks (24 bytes); with day-ahead prices the tariff's 200 quarters of market
prices (800 bytes, ``market.py``). The quarter ring alone: 5600 bytes. Measured under the
MicroPython VM (``tests/host/test_usage.py``): building ``Usage(Tariff())`` allocates about
10.7 KB in all. The file on the card (``SMU3``) is ``8968`` bytes with its header; the board
writes it piece by piece (:meth:`Usage.to_pieces`) and loads it with :meth:`Usage.load`,
straight into the arrays (a few hundred bytes besides). ``usagefile.py`` has the file as one
bytes object (tests, tools) and loads the ``SMU1`` and ``SMU2`` files of earlier versions (with
empty quarters / grid parts and peaks), a module the board loads only for such a file. Runs
under the MicroPython VM.
"""

from array import array

from ..timeutil import civil_from_days, eu_offset
from .peaks import WORDS as PEAK_WORDS
from .peaks import Peaks

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


GAP_S = const(600)  # telegrams further apart than this: a gap (meters push every 1-10 s)
MAX_W = const(100_000)  # a household connection cannot draw more (3 x 63 A x 230 V = 43 kW)
BACK_WH = const(1000)  # = protocol.reading.BACK_WH: a register this little lower is a glitch
QUARTERS = const(200)  # 50 hours: yesterday and today, also on a 25-hour day
HOURS = const(72)
DAYS = const(32)
MONTHS = const(13)
_FIELDS = const(7)
# row fields
KEY = const(0)  # quarter: UTC epoch // 900; hour: UTC epoch // 3600; day: days since 1970
# (local); month: year * 12 + m - 1
IMP = const(1)  # import Wh
EXP = const(2)  # export Wh
COST = const(3)  # import cost, milli-cent (hours, days, months)
CREDIT = const(4)  # export credit, milli-cent (hours, days, months)
Q_PRICE = const(3)  # quarters: the gross import price it was costed with, mct/kWh
Q_FEED = const(4)  # quarters: the feed-in price it was credited with, mct/kWh
FLAGS = const(5)
GRID = const(6)  # grid part of the cost, milli-cent (hours, days, months)
Q_GRID = const(6)  # quarters: the grid fee it was costed with, mct/kWh
# flags (low byte, only ever set); quarters and hours keep the covered seconds in bits 8-19
GAP = const(1)  # data missing in this period (a gap or a counter jump)
NOPRICE = const(2)  # some import had no price: the cost is not known
DYNAMIC = const(4)  # some of it was priced with day-ahead prices
JUMP = const(8)  # the counter jumped (meter replaced) in this period
NOFEED = const(16)  # some export had no feed-in price
FEED_DYNAMIC = const(32)  # some export was credited at the market price (FEED_IN_DYNAMIC)
Q_PRICED = const(64)  # quarters only: Q_PRICE holds its import price (a price may be 0)
Q_FED = const(128)  # quarters only: Q_FEED holds its feed-in price
_PERIOD_FLAGS = const(63)  # what a quarter passes on to its hour, day and month
_COVER_SHIFT = const(8)
# days and months: how many of their bookings had no price (bits 8-19) / no feed-in price
# (bits 20-29), so the flag goes when prices arriving later have costed the last of them
_NOPRICE_N = const(8)
_NOPRICE_TOP = const(0xFFF)  # where the count sticks (and the flag stays)
_NOFEED_N = const(20)
_NOFEED_TOP = const(0x3FF)
FULL_S = const(3300)  # an hour with less coverage than this is shown as partial
FULL_Q_S = const(825)  # a quarter with less coverage than this is shown as partial

_MAGIC = b"SMU3"
_MAGIC_V2 = b"SMU2"  # before grid fees and peaks: 6 fields a row (usagefile.from_bytes loads it)
_MAGIC_V1 = b"SMU1"  # before quarters: hours, days, months (usagefile.from_bytes loads it)
_HEAD = const(32)  # magic, version/sizes, seq, last epoch, last A+, last A-, jumps, checksum
_SIZES = const((QUARTERS // 4) << 24 | HOURS << 16 | DAYS << 8 | MONTHS)


def local_day(epoch, std_offset_min=60, eu=True):
    """Days since 1970 of the local date at UTC ``epoch``."""
    off = eu_offset(epoch, std_offset_min) if eu else std_offset_min
    return (epoch + off * 60) // 86400


def month_of_day(day):
    """``year * 12 + month - 1`` of a day number."""
    y, m, _d = civil_from_days(day)
    return y * 12 + m - 1


class Tariff:
    """Prices per quarter hour in milli-cent per kWh, gross (what the bill says).

    :param price_mct: fixed import price (``PRICE_CT_KWH`` * 1000), 0 = unknown
    :param feed_in_mct: fixed export credit (``FEED_IN_CT_KWH`` * 1000), 0 = none
    :param base_fee_mct: monthly base fee (``BASE_FEE_EUR_MONTH`` * 100 000)
    :param markup_mct: added to the day-ahead price (net, per kWh)
    :param vat_mpct: VAT on the day-ahead price plus markup, in 1/1000 % (20 % = 20000)
    :param feed_in_dynamic: export is credited at the market price minus ``feed_in_fee_mct``
        per quarter (``FEED_IN_DYNAMIC``); the fixed ``feed_in_mct`` where no market price is
        known
    :param feed_in_fee_mct: the feed-in tariff's fee off the market price (no VAT on feed-in:
        households are small businesses); may make the credit negative when the market is

    This one has fixed prices only. Day-ahead prices (``PRICE_DYNAMIC``) are
    ``market.MarketTariff``, a module a board with fixed prices never loads; ``markup_mct``,
    ``vat_mpct`` and ``feed_in_fee_mct`` are for it. ``version`` counts its price updates
    (``Usage.add`` then calls its ``reprice``): here it stays 0.
    """

    def __init__(
        self,
        price_mct=0,
        feed_in_mct=0,
        base_fee_mct=0,
        markup_mct=0,
        vat_mpct=0,
        feed_in_dynamic=False,
        feed_in_fee_mct=0,
    ):
        self.price_mct = price_mct
        self.feed_in_mct = feed_in_mct
        self.base_fee_mct = base_fee_mct
        self.markup_mct = markup_mct
        self.vat_mpct = vat_mpct
        self.feed_in_dynamic = bool(feed_in_dynamic)
        self.feed_in_fee_mct = feed_in_fee_mct
        self._n = 0  # quarters with a day-ahead price (market.MarketTariff)
        self.version = 0  # counts the price updates (the cheapest-window search follows it)
        self.fees = None  # gridfee.GridFees: the grid fee of each quarter (None: no grid fee)
        self.outlook = None  # outlook.Outlook: the cheapest windows (made by app._usage)

    def market_quarters(self):
        """Number of quarters with a day-ahead price."""
        return self._n

    def market_hours(self):
        """Hours' worth of day-ahead prices (quarters / 4, rounded up)."""
        return (self._n + 3) // 4

    def import_q(self, q):
        """``(mct_per_kwh, dynamic)`` for UTC quarter ``q``; ``(None, False)`` when unknown."""
        if self.price_mct:
            return self.price_mct, False
        return None, False

    def export_q(self, q):
        """``(mct_per_kwh, dynamic)`` credited for export in quarter ``q``; ``(None, False)``
        when there is no feed-in tariff."""
        if self.feed_in_mct:
            return self.feed_in_mct, False
        return None, False

    def grid_q(self, q):
        """The grid fee of UTC quarter ``q`` in mct/kWh, or None without grid fees."""
        fees = self.fees
        if fees is None or not fees.active():
            return None
        return fees.fee(q * 900)

    def has_feed_in(self):
        """True when export is credited at all."""
        return bool(self.feed_in_mct) or self.feed_in_dynamic


def _zeros(n):
    """An int32 array of ``n`` zeros, allocated once at its size and nothing else: made from
    ``range(n)`` (its length sizes the array, no temporary) and zeroed in place. ``[0] * n`` or
    ``bytes(4 * n)`` would allocate a temporary as big again, a list makes MicroPython's array
    grow by doubling, and a module-level zero buffer to copy from would stay for good."""
    a = array("i", range(n))
    for i in range(n):
        a[i] = 0
    return a


_INT32 = 0x7FFFFFFF  # a long int on the board; compared once per quarter booked


def _add(d, i, value):
    """``d[i] += value``, held at the int32 limits: a cost that large (21 474 EUR; day-ahead
    prices up to the bound prices.py accepts can reach it) is shown at the limit instead of
    stopping the summary with an OverflowError on every telegram."""
    total = d[i] + value
    if total > _INT32:
        total = _INT32
    elif total < -_INT32:
        total = -_INT32
    d[i] = total


def _div_round(a, b):
    """``a / b`` rounded half away from zero, integers only."""
    if a < 0:
        return -((-a + b // 2) // b)
    return (a + b // 2) // b


def _count(d, base, shift, top, step, bit):
    """Count (``step`` 1) or take back (-1) an unpriced booking in a day or month row's flags
    (bits ``shift``.., up to ``top``, where the count sticks); taking back the last one clears
    ``bit``. A row counted by an older version (flag, no count) keeps its flag."""
    f = d[base + FLAGS]
    n = (f >> shift) & top
    if n == top or (step < 0 and n == 0):
        return
    n += step
    if n == 0:
        f &= ~bit
    d[base + FLAGS] = (f & ~(top << shift)) | (n << shift)


def _counts(d, base, flags, step):
    """Count (``step`` 1) or take back (-1) the unpriced import (``NOPRICE`` in ``flags``) and
    export (``NOFEED``) of a booking in day or month row ``base``."""
    if flags & NOPRICE:
        _count(d, base, _NOPRICE_N, _NOPRICE_TOP, step, NOPRICE)
    if flags & NOFEED:
        _count(d, base, _NOFEED_N, _NOFEED_TOP, step, NOFEED)


def cost_mct(wh, price_mct_per_kwh):
    """Cost of ``wh`` Wh at ``price`` mct/kWh, in mct (rounded)."""
    return _div_round(wh * price_mct_per_kwh, 1000)


class Ring:
    """Fixed rows of ``_FIELDS`` int32 in one preallocated array, oldest overwritten first.

    Rows are kept in increasing ``KEY`` order: a key older than the newest row is looked up
    among the kept rows (never inserted in the middle).
    """

    def __init__(self, size):
        self.size = size
        self.data = _zeros(size * _FIELDS)
        self.count = 0
        self.head = -1  # row index of the newest row

    def clear(self):
        for i in range(len(self.data)):
            self.data[i] = 0
        self.count = 0
        self.head = -1

    def newest_key(self):
        return self.data[self.head * _FIELDS] if self.count else None

    def find(self, key):
        """Base offset of the row with ``key`` in ``data``, or -1."""
        size = self.size
        for k in range(self.count):
            i = (self.head - k) % size
            base = i * _FIELDS
            have = self.data[base]
            if have == key:
                return base
            if have < key:
                return -1
        return -1

    def row(self, key, create=True):
        """Base offset of the row for ``key``, made (zeroed) when it is newer than all; -1 when
        it is older than the kept rows and not among them."""
        if self.count and self.data[self.head * _FIELDS] == key:
            return self.head * _FIELDS
        if self.count and key < self.data[self.head * _FIELDS]:
            return self.find(key)
        if not create:
            return -1
        self.head = (self.head + 1) % self.size
        base = self.head * _FIELDS
        d = self.data
        d[base] = key
        for f in range(1, _FIELDS):
            d[base + f] = 0
        if self.count < self.size:
            self.count += 1
        return base

    def rows(self):
        """Base offsets oldest first."""
        size = self.size
        start = (self.head - self.count + 1) % size
        for k in range(self.count):
            yield ((start + k) % size) * _FIELDS


class Usage:
    """The quarter, hour, day and month summary, fed one telegram at a time by :meth:`add`.

    :param tariff: a :class:`Tariff` (prices), or None: energy only
    :param std_offset_min: standard-time UTC offset of the meter's zone (CET: 60)
    :param eu_dst: EU summer time applies
    """

    def __init__(self, tariff=None, std_offset_min=60, eu_dst=True):
        self.tariff = tariff
        self._std = std_offset_min
        self._eu = eu_dst
        self.quarters = Ring(QUARTERS)
        self.hours = Ring(HOURS)
        self.days = Ring(DAYS)
        self.months = Ring(MONTHS)
        self.last_epoch = None
        self.last_imp = None
        self.last_exp = None
        self.jumps = 0  # counter jumps ignored (meter replaced, register reset)
        self.backwards = 0  # telegrams skipped whose register went back a little (BACK_WH)
        self.gaps = 0  # gaps longer than GAP_S
        self.samples = 0
        self.seq = 0  # save counter (the newer of two files wins)
        self._open_q = None  # the quarter whose cost is not booked yet
        self._version = 0  # tariff.version the closed quarters were costed at (reprice)
        self.peaks = Peaks()  # the month's highest quarter-hour demands (saved with the rest)

    # -- feeding -------------------------------------------------------------------------------
    def add(self, epoch, imp_wh, exp_wh):
        """Book one telegram: UTC ``epoch`` (int s), registers A+ and A- in Wh (None: absent).

        :returns: True when an hour closed (a good moment to save)
        """
        if imp_wh is None:
            return False
        if exp_wh is None:
            exp_wh = 0
        epoch = int(epoch)
        last = self.last_epoch
        if last is not None and epoch <= last:
            return False  # duplicate or older (clock corrected back): never counted twice
        tariff = self.tariff
        if tariff is not None and tariff.version != self._version:
            self._version = tariff.version
            tariff.reprice(self)  # day-ahead prices arrived (market.MarketTariff)
        self.samples += 1
        q = epoch // 900
        closed = self._close_quarter(q)
        if last is None:
            self._remember(epoch, imp_wh, exp_wh)
            return closed
        dt = epoch - last
        d_imp = imp_wh - self.last_imp
        d_exp = exp_wh - self.last_exp
        if (d_imp < 0 or d_exp < 0) and d_imp >= -BACK_WH and d_exp >= -BACK_WH:
            self.backwards += 1  # skipped: the last good registers stay the base
            return closed
        self._remember(epoch, imp_wh, exp_wh)
        limit = dt * MAX_W // 3600 + 10
        day = local_day(epoch, self._std, self._eu)
        if d_imp < 0 or d_exp < 0 or d_imp > limit or d_exp > limit:
            self.jumps += 1
            self._flag(q, day, GAP | JUMP)
            return closed
        if dt > GAP_S:
            self.gaps += 1
            last_day = local_day(last, self._std, self._eu)
            self._flag(last // 900, last_day, GAP)
            self._flag(q, day, GAP)
            if last_day == day:  # the meter's day total stays right; no quarter or hour gets it
                cost, credit, flags, _p, _f = self._price(q, d_imp, d_exp)
                grid = self._grid(q, d_imp)[1]
                self._book(day, d_imp, d_exp, cost, credit, flags & _PERIOD_FLAGS, grid)
            return closed
        for ring, key, full in ((self.quarters, q, 900), (self.hours, q >> 2, 3600)):
            base = ring.row(key)
            d = ring.data
            d[base + IMP] += d_imp
            d[base + EXP] += d_exp
            cover = (d[base + FLAGS] >> _COVER_SHIFT) + dt
            d[base + FLAGS] = (d[base + FLAGS] & 0xFF) | ((cover if cover < full else full) << 8)
        self._open_q = q
        self._book(day, d_imp, d_exp, 0, 0, 0)
        return closed

    def _remember(self, epoch, imp, exp):
        self.last_epoch = epoch
        self.last_imp = imp
        self.last_exp = exp

    def _flag(self, q, day, flags):
        for ring, key in (
            (self.quarters, q),
            (self.hours, q >> 2),
            (self.days, day),
            (self.months, month_of_day(day)),
        ):
            base = ring.row(key)
            if base >= 0:
                ring.data[base + FLAGS] |= flags

    def _book(self, day, imp, exp, cost, credit, flags, grid=0):
        """Energy (and cost) into day and month."""
        for ring, key in ((self.days, day), (self.months, month_of_day(day))):
            base = ring.row(key)
            if base < 0:
                continue
            d = ring.data
            d[base + IMP] += imp
            d[base + EXP] += exp
            _add(d, base + COST, cost)
            _add(d, base + CREDIT, credit)
            d[base + FLAGS] |= flags
            _add(d, base + GRID, grid)
            _counts(d, base, flags, 1)

    def _grid(self, q, imp):
        """``(fee, grid)``: the grid fee of quarter ``q`` (mct/kWh) and the grid part of ``imp``
        Wh (mct); ``(None, 0)`` without grid fees."""
        tariff = self.tariff
        fee = tariff.grid_q(q) if tariff is not None else None
        if fee is None:
            return None, 0
        return fee, cost_mct(imp, fee)

    def _price(self, q, imp, exp):
        """``(cost, credit, flags, price, feed)`` of ``imp``/``exp`` Wh in UTC quarter ``q``
        (prices in mct/kWh, 0 when unknown: then the flag says so)."""
        cost = credit = 0
        flags = 0
        tariff = self.tariff
        price, dynamic = tariff.import_q(q) if tariff is not None else (None, False)
        if price is not None:
            cost = cost_mct(imp, price)
            flags |= Q_PRICED
            if dynamic:
                flags |= DYNAMIC
        else:
            price = 0
            if imp:
                flags |= NOPRICE
        feed, fdyn = tariff.export_q(q) if tariff is not None else (None, False)
        if feed is not None:
            credit = cost_mct(exp, feed)
            flags |= Q_FED
            if fdyn:
                flags |= FEED_DYNAMIC
        else:
            feed = 0
            if exp:
                flags |= NOFEED
        return cost, credit, flags, price, feed

    def _close_quarter(self, q):
        """Price the open quarter once a later quarter begins; book its cost into its hour, day
        and month. :returns: True when that closed an hour too."""
        open_q = self._open_q
        if open_q is None or open_q >= q:
            return False
        self._open_q = None
        hour_closed = (open_q >> 2) < (q >> 2)
        base = self.quarters.find(open_q)
        if base < 0:
            return hour_closed
        d = self.quarters.data
        imp = d[base + IMP]
        cost, credit, flags, price, feed = self._price(open_q, imp, d[base + EXP])
        fee, grid = self._grid(open_q, imp)
        d[base + Q_PRICE] = price
        d[base + Q_FEED] = feed
        d[base + Q_GRID] = fee or 0
        d[base + FLAGS] |= flags
        flags &= _PERIOD_FLAGS
        hb = self.hours.find(open_q >> 2)
        if hb >= 0:
            h = self.hours.data
            _add(h, hb + COST, cost)
            _add(h, hb + CREDIT, credit)
            h[hb + FLAGS] |= flags
            _add(h, hb + GRID, grid)
        day = local_day(open_q * 900, self._std, self._eu)
        self._book(day, 0, 0, cost, credit, flags, grid)
        self.peaks.add(open_q, imp, month_of_day(day))  # demand = imp x 4 (W)
        return hour_closed

    # -- reading -------------------------------------------------------------------------------
    def open_cost(self):
        """``(quarter, cost, credit, flags, grid)`` of the quarter still open (priced as of
        now), or None."""
        q = self._open_q
        if q is None:
            return None
        base = self.quarters.find(q)
        if base < 0:
            return None
        d = self.quarters.data
        cost, credit, flags, _p, _f = self._price(q, d[base + IMP], d[base + EXP])
        return q, cost, credit, flags & _PERIOD_FLAGS, self._grid(q, d[base + IMP])[1]

    def quarter(self, q):
        """``(imp, exp, cost, credit, flags, price, feed)`` of UTC quarter ``q`` (``epoch //
        900``), or None when there is no row (no data, or older than the ring). Energies in Wh,
        cost and credit in mct (None when the price is unknown), prices in mct/kWh (None when
        unknown): the prices it was costed with, or for the open quarter today's."""
        ring = self.quarters
        base = ring.find(q)
        if base < 0:
            return None
        d = ring.data
        imp = d[base + IMP]
        exp = d[base + EXP]
        flags = d[base + FLAGS]
        if q == self._open_q:
            cost, credit, more, price, feed = self._price(q, imp, exp)
            flags |= more
        else:
            price = d[base + Q_PRICE]
            feed = d[base + Q_FEED]
            cost = cost_mct(imp, price)
            credit = cost_mct(exp, feed)
        priced = flags & Q_PRICED
        fed = flags & Q_FED
        return (
            imp,
            exp,
            cost if priced else None,
            credit if fed else None,
            flags & ~(Q_PRICED | Q_FED),
            price if priced else None,
            feed if fed else None,
        )

    def quarter_grid(self, q):
        """``(fee_mct_kwh, grid_mct)`` of UTC quarter ``q``: the grid fee it was costed with
        (for the open quarter: the fee now) and its import x that fee; None without grid fees
        or a row."""
        if not self._fees_on():
            return None
        base = self.quarters.find(q)
        if base < 0:
            return None
        d = self.quarters.data
        imp = d[base + IMP]
        fee = self._grid(q, imp)[0] if q == self._open_q else d[base + Q_GRID]
        return fee, cost_mct(imp, fee)

    def _fees_on(self):
        tariff = self.tariff
        return tariff is not None and tariff.fees is not None and tariff.fees.active()

    def grid_part(self, ring, key):
        """The grid part (mct) of ``key`` in ``ring`` (the open quarter's included), or None
        without grid fees or a row."""
        if not self._fees_on():
            return None
        if ring is self.quarters:
            row = self.quarter_grid(key)
            return None if row is None else row[1]
        base = ring.find(key)
        if base < 0:
            return None
        grid = ring.data[base + GRID]
        open_ = self.open_cost()
        if open_ is not None and self._holds(ring, key, open_[0]):
            grid += open_[4]
        return grid

    def _holds(self, ring, key, q):
        """True when row ``key`` of ``ring`` (hours, days, months) holds quarter ``q``."""
        if ring is self.hours:
            return q >> 2 == key
        day = local_day(q * 900, self._std, self._eu)
        return (day if ring is self.days else month_of_day(day)) == key

    def period(self, ring, key):
        """``(imp, exp, cost, credit, flags)`` of ``key`` in ``ring`` (one of ``quarters``,
        ``hours``, ``days``, ``months``; the open quarter's cost included), or None when there
        is no row."""
        if ring is self.quarters:
            row = self.quarter(key)
            if row is None:
                return None
            return row[0], row[1], row[2] or 0, row[3] or 0, row[4]
        base = ring.find(key)
        if base < 0:
            return None
        d = ring.data
        imp = d[base + IMP]
        exp = d[base + EXP]
        cost = d[base + COST]
        credit = d[base + CREDIT]
        flags = d[base + FLAGS]
        if ring is not self.hours:
            flags &= 0xFF  # days and months: the counts above are not for readers
        open_ = self.open_cost()
        if open_ is not None and self._holds(ring, key, open_[0]):
            cost += open_[1]
            credit += open_[2]
            flags |= open_[3]
        return imp, exp, cost, credit, flags

    def day_key(self, epoch):
        """The local day number of UTC ``epoch``."""
        return local_day(epoch, self._std, self._eu)

    def day_start(self, day):
        """UTC epoch of local midnight starting day number ``day``."""
        local = day * 86400
        if not self._eu:
            return local - self._std * 60
        return local - eu_offset(local - self._std * 60, self._std) * 60

    # -- file ------------------------------------------------------------------------------------
    def _rings(self):
        return (self.hours, self.days, self.months, self.quarters)

    def to_pieces(self):
        """The summary file as buffers in file order: the 32-byte header (with the checksum),
        then per ring its count and head and its int32 array as it is, then the peaks.

        Written piece by piece (``configvalues.write_private``), the hourly save allocates nothing
        of the file's size: a board's heap, fragmented after hours of running, often has no
        9 KiB in one piece (in the CircuitPython VM the save failed "allocating 8969 bytes"
        with 79 KiB free, and the loop shed a part for it)."""
        self.seq += 1
        sums = _Fletcher()
        pieces = [None]
        for ring in self._rings():
            pair = array("i", (ring.count, ring.head))
            sums.add(pair)
            sums.add(ring.data)
            pieces.append(pair)
            pieces.append(ring.data)
        peaks = array("i", self.peaks.to_words())
        sums.add(peaks)
        pieces.append(peaks)
        head = bytearray(_HEAD)
        head[0:4] = _MAGIC
        pos = 4
        for v in (
            _SIZES,
            self.seq,
            self.last_epoch if self.last_epoch is not None else -1,
            self.last_imp if self.last_imp is not None else -1,
            self.last_exp if self.last_exp is not None else -1,
            self.jumps,
            sums.value(),
        ):
            head[pos : pos + 4] = _i32(v)
            pos += 4
        pieces[0] = head
        return pieces

    def _take_head(self, head):
        """The save counter, last telegram and jumps of a checked header (after the rings)."""
        self.seq = _u32(head, 8)
        last = [_u32(head, 12 + 4 * k) for k in range(4)]
        self.last_epoch = None if last[0] == -1 else last[0]
        self.last_imp = None if last[1] == -1 else last[1]
        self.last_exp = None if last[2] == -1 else last[2]
        self.jumps = last[3]
        # the quarter of the last telegram is never closed yet (a later telegram closes it)
        self._open_q = None
        if self.last_epoch is not None and self.quarters.find(self.last_epoch // 900) >= 0:
            self._open_q = self.last_epoch // 900

    def load(self, f):
        """Load a summary file of this version (``SMU3``) from the open file ``f`` (at its
        start) piece by piece: the header, then each ring's count and head and its int32 data
        read straight into the ring's own array (``f.readinto``), then the peaks, checked with
        the writer's checksum as they come. Allocates nothing of the file's size: reading the
        file whole (9 KB) and making new arrays from it needed about 20 KB more than the
        summary at every boot, a block a heap fragmented by hours of running often lacks.
        The arrays hold the file's bytes as they are (little-endian int32, as written).

        :raises ValueError: when the file is damaged (short, too long, other sizes, bad ring
            counts, peaks or checksum); the summary is then cleared, never half loaded.
        :raises OSError: from the card; the summary is cleared too.
        """
        head = bytearray(_HEAD)
        try:
            self._load(f, head)
        except (OSError, ValueError):
            self.clear()
            raise
        self._take_head(head)

    def _load(self, f, head):
        if f.readinto(head) != _HEAD or head[:4] != _MAGIC or _u32(head, 4) != _SIZES:
            raise ValueError("not a usage summary")
        sums = _Fletcher()
        words = bytearray(8)  # a ring's count and head, then each peak word
        word = memoryview(words)[:4]
        for ring in self._rings():
            if f.readinto(words) != 8:
                raise ValueError("short")
            count = _u32(words, 0)
            at = _u32(words, 4)
            if count < 0 or count > ring.size or (count and not 0 <= at < ring.size):
                raise ValueError("bad ring")
            sums.add((count, at))
            if f.readinto(ring.data) != 4 * len(ring.data):
                raise ValueError("short")
            sums.add(ring.data)
            ring.count = count
            ring.head = at if count else -1
        peaks = []
        for _k in range(PEAK_WORDS):
            if f.readinto(word) != 4:
                raise ValueError("short")
            peaks.append(_u32(words, 0))
        if f.readinto(word[:1]):
            raise ValueError("too long")
        sums.add(peaks)
        if sums.value() != _u32(head, 28) & 0xFFFFFFFF:
            raise ValueError("checksum")
        self.peaks.from_words(peaks)  # raises ValueError when they make no sense

    def clear(self):
        for ring in self._rings():
            ring.clear()
        self.last_epoch = self.last_imp = self.last_exp = None
        self._open_q = None
        self.jumps = self.gaps = self.samples = 0
        self.peaks.clear()


def read_head(f):
    """``(seq, current)`` from the 32-byte header of the summary file open as ``f``: its save
    counter and whether it is of this version (``SMU3``: :meth:`Usage.load` reads it; older
    ones load whole with ``usagefile.from_bytes``). Checks nothing else (the load does).
    :raises ValueError: when it is no summary file at all."""
    head = f.read(_HEAD)
    if len(head) != _HEAD or head[:4] not in (_MAGIC, _MAGIC_V2, _MAGIC_V1):
        raise ValueError("not a usage summary")
    return _u32(head, 8), head[:4] == _MAGIC


def _i32(v):
    v &= 0xFFFFFFFF
    return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24))


def _u32(b, pos):
    v = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16) | (b[pos + 3] << 24)
    return v - (1 << 32) if v & 0x80000000 else v


class _Fletcher:
    """``usagefile.checksum`` (Fletcher-32) over int32 values (little endian, as their bytes in
    the file), fed in pieces. Reduced every 64 values so the sums stay small ints on the board
    (no long ints)."""

    def __init__(self):
        self.a = 0
        self.b = 0

    def add(self, values):
        a = self.a
        b = self.b
        k = 0
        for v in values:
            a += v & 0xFFFF
            b += a
            a += (v >> 16) & 0xFFFF
            b += a
            k += 1
            if k == 64:
                a %= 65535
                b %= 65535
                k = 0
        self.a = a % 65535
        self.b = b % 65535

    def value(self):
        return (self.b << 16) | self.a
