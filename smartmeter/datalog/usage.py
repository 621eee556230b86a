# SPDX-License-Identifier: MIT
"""Energy per hour, day and month from the meter's own registers, with cost. Pure logic.

What it counts: the differences of the energy registers A+ (import) and A- (export) between
consecutive telegrams, never integrated power. A difference is booked to the hour (UTC hour),
the local day and the local month of the later telegram. So the hours of a day add up to the
register difference over that day, to the Wh.

What it does not count, and shows instead:

- **Gaps.** Two telegrams more than ``GAP_S`` apart (reader off, power cut, cable pulled): the
  difference across the gap belongs to no hour - the hours in between have no row and are
  shown as gaps, not as zero. It still belongs to the day when both telegrams are on the same
  local day (the day total then stays the meter's), and the day and hour are flagged ``GAP``.
- **Counter jumps.** A register that goes backwards (meter replaced, counter restarts at 0) or
  rises faster than ``MAX_W`` could explain: the difference is dropped, counted in ``jumps``,
  and the next difference counts from the new value. No spike.
- **DST.** Hours are UTC hours, so the 23- and 25-hour local days just have fewer or more rows;
  days and months are local (the meter's EU rule, ``std_offset_min`` + summer time).

Cost: each hour's import is priced when the hour closes, with the tariff's price of that hour
(dynamic day-ahead price if known, else the fixed ``PRICE_CT_KWH``), export likewise with the
feed-in tariff. Prices and costs are integers in milli-cent (1/1000 ct); energies in Wh.

Memory (bounded, fixed at start): three rings of ``_FIELDS`` int32 (``array("i")``) per row -
72 hours, 32 days, 13 months - ``(72 + 32 + 13) * 6 * 4 = 2808`` bytes of arrays, plus the
tariff's 50 hours of prices (400 bytes) and one 432-byte zero buffer they are made from:
3640 bytes of data. Measured under the MicroPython VM (``tests/host/test_usage.py``): building
``Usage(Tariff())`` allocates about 4 KB in all. :meth:`Usage.to_bytes` is ``2864`` bytes with
its header, the file on the card. Runs under the MicroPython VM.
"""

from array import array

from ..timeutil import civil_from_days, eu_offset

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


GAP_S = const(600)  # telegrams further apart than this: a gap (meters push every 1-10 s)
MAX_W = const(100_000)  # a household connection cannot draw more (3 x 63 A x 230 V = 43 kW)
HOURS = const(72)
DAYS = const(32)
MONTHS = const(13)
_MARKET_HOURS = const(50)  # today and tomorrow, also on a 25-hour day
_FIELDS = const(6)
# row fields
KEY = const(0)  # hour: UTC epoch // 3600; day: days since 1970 (local); month: year * 12 + m - 1
IMP = const(1)  # import Wh
EXP = const(2)  # export Wh
COST = const(3)  # import cost, milli-cent
CREDIT = const(4)  # export credit, milli-cent
FLAGS = const(5)
# flags (low byte, only ever set); hours keep the covered seconds in bits 8-19
GAP = const(1)  # data missing in this period (a gap or a counter jump)
NOPRICE = const(2)  # some import had no price: the cost is not known
DYNAMIC = const(4)  # some of it was priced with day-ahead prices
JUMP = const(8)  # the counter jumped (meter replaced) in this period
NOFEED = const(16)  # some export had no feed-in price
_COVER_SHIFT = const(8)
FULL_S = const(3300)  # an hour with less coverage than this is shown as partial

_MAGIC = b"SMU1"
_HEAD = const(32)  # magic, version/sizes, seq, last epoch, last A+, last A-, jumps, checksum


def local_day(epoch, std_offset_min=60, eu=True):
    """Days since 1970 of the local date at UTC ``epoch``."""
    off = eu_offset(epoch, std_offset_min) if eu else std_offset_min
    return (epoch + off * 60) // 86400


def month_of_day(day):
    """``year * 12 + month - 1`` of a day number."""
    y, m, _d = civil_from_days(day)
    return y * 12 + m - 1


class Tariff:
    """Prices per hour in milli-cent per kWh, gross (what the bill says).

    :param price_mct: fixed import price (``PRICE_CT_KWH`` * 1000), 0 = unknown
    :param feed_in_mct: fixed export credit (``FEED_IN_CT_KWH`` * 1000), 0 = none
    :param base_fee_mct: monthly base fee (``BASE_FEE_EUR_MONTH`` * 100 000)
    :param markup_mct: added to the day-ahead price (net, per kWh)
    :param vat_mpct: VAT on the day-ahead price plus markup, in 1/1000 % (20 % = 20000)

    Day-ahead prices arrive through :meth:`set_market` (from ``outputs/prices.py``) as EUR/MWh
    per UTC hour; the gross price is ``(market / 10 + markup) * (1 + VAT)`` in ct/kWh.
    """

    def __init__(self, price_mct=0, feed_in_mct=0, base_fee_mct=0, markup_mct=0, vat_mpct=0):
        self.price_mct = price_mct
        self.feed_in_mct = feed_in_mct
        self.base_fee_mct = base_fee_mct
        self.markup_mct = markup_mct
        self.vat_mpct = vat_mpct
        self._hours = _zeros(_MARKET_HOURS)  # UTC hour numbers, 0 = empty
        self._prices = _zeros(_MARKET_HOURS)  # gross mct/kWh
        self._n = 0

    def set_market(self, hours):
        """Take ``[(utc_hour, milli_eur_per_mwh), ...]`` (market price * 1000); keeps the
        newest 50 hours."""
        hours = sorted(hours)[-_MARKET_HOURS:]
        for i in range(_MARKET_HOURS):
            self._hours[i] = 0
        vat = 100_000 + self.vat_mpct
        for i, (hour, milli_eur_mwh) in enumerate(hours):
            # EUR/MWh * 1000 -> mct/kWh: 1 EUR/MWh = 0.1 ct/kWh, so milli-EUR/MWh / 10 = mct/kWh
            net = _div_round(milli_eur_mwh, 10) + self.markup_mct
            self._hours[i] = hour
            self._prices[i] = _div_round(net * vat, 100_000)
        self._n = len(hours)

    def market_hours(self):
        """Number of hours with a day-ahead price."""
        return self._n

    def dynamic(self, hour):
        """The gross day-ahead price of UTC ``hour`` in mct/kWh, or None."""
        for i in range(self._n):
            if self._hours[i] == hour:
                return self._prices[i]
        return None

    def import_price(self, hour):
        """``(mct_per_kwh, dynamic)`` for UTC ``hour``; ``(None, False)`` when unknown."""
        p = self.dynamic(hour)
        if p is not None:
            return p, True
        if self.price_mct:
            return self.price_mct, False
        return None, False


_ZERO = bytes(HOURS * _FIELDS)  # the largest array, in elements


def _zeros(n):
    """An int32 array of ``n`` zeros, allocated once at its size: from a memoryview of zero
    bytes (each byte one element). ``[0] * n`` or ``bytes(4 * n)`` would allocate a temporary
    as big again, and a list makes MicroPython's array grow by doubling."""
    return array("i", memoryview(_ZERO)[:n])


def _div_round(a, b):
    """``a / b`` rounded half away from zero, integers only."""
    if a < 0:
        return -((-a + b // 2) // b)
    return (a + b // 2) // b


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
    """The hour, day and month summary, fed one telegram at a time by :meth:`add`.

    :param tariff: a :class:`Tariff` (prices), or None: energy only
    :param std_offset_min: standard-time UTC offset of the meter's zone (CET: 60)
    :param eu_dst: EU summer time applies
    """

    def __init__(self, tariff=None, std_offset_min=60, eu_dst=True):
        self.tariff = tariff
        self._std = std_offset_min
        self._eu = eu_dst
        self.hours = Ring(HOURS)
        self.days = Ring(DAYS)
        self.months = Ring(MONTHS)
        self.last_epoch = None
        self.last_imp = None
        self.last_exp = None
        self.jumps = 0  # counter jumps ignored (meter replaced, register reset)
        self.gaps = 0  # gaps longer than GAP_S
        self.samples = 0
        self.seq = 0  # save counter (the newer of two files wins)
        self._open_hour = None  # the hour whose cost is not booked yet

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
        self.samples += 1
        hour = epoch // 3600
        closed = self._close_hours(hour)
        if last is None:
            self._remember(epoch, imp_wh, exp_wh)
            return closed
        dt = epoch - last
        d_imp = imp_wh - self.last_imp
        d_exp = exp_wh - self.last_exp
        self._remember(epoch, imp_wh, exp_wh)
        limit = dt * MAX_W // 3600 + 10
        day = local_day(epoch, self._std, self._eu)
        if d_imp < 0 or d_exp < 0 or d_imp > limit or d_exp > limit:
            self.jumps += 1
            self._flag(hour, day, GAP | JUMP)
            return closed
        if dt > GAP_S:
            self.gaps += 1
            last_day = local_day(last, self._std, self._eu)
            self._flag(last // 3600, last_day, GAP)
            self._flag(hour, day, GAP)
            if last_day == day:  # the meter's day total stays right; no hour gets it
                cost, credit, flags = self._price(hour, d_imp, d_exp)
                self._book(day, d_imp, d_exp, cost, credit, flags)
            return closed
        base = self.hours.row(hour)
        d = self.hours.data
        d[base + IMP] += d_imp
        d[base + EXP] += d_exp
        cover = (d[base + FLAGS] >> _COVER_SHIFT) + dt
        d[base + FLAGS] = (d[base + FLAGS] & 0xFF) | ((cover if cover < 3600 else 3600) << 8)
        self._open_hour = hour
        self._book(day, d_imp, d_exp, 0, 0, 0)
        return closed

    def _remember(self, epoch, imp, exp):
        self.last_epoch = epoch
        self.last_imp = imp
        self.last_exp = exp

    def _flag(self, hour, day, flags):
        for ring, key in ((self.hours, hour), (self.days, day), (self.months, month_of_day(day))):
            base = ring.row(key)
            if base >= 0:
                ring.data[base + FLAGS] |= flags

    def _book(self, day, imp, exp, cost, credit, flags):
        """Energy (and cost) into day and month."""
        for ring, key in ((self.days, day), (self.months, month_of_day(day))):
            base = ring.row(key)
            if base < 0:
                continue
            d = ring.data
            d[base + IMP] += imp
            d[base + EXP] += exp
            d[base + COST] += cost
            d[base + CREDIT] += credit
            d[base + FLAGS] |= flags

    def _price(self, hour, imp, exp):
        """``(cost, credit, flags)`` of ``imp``/``exp`` Wh in UTC ``hour``."""
        cost = credit = 0
        flags = 0
        tariff = self.tariff
        price, dynamic = tariff.import_price(hour) if tariff is not None else (None, False)
        if price is not None:
            cost = cost_mct(imp, price)
            if dynamic:
                flags |= DYNAMIC
        elif imp:
            flags |= NOPRICE
        feed = tariff.feed_in_mct if tariff is not None else 0
        if feed:
            credit = cost_mct(exp, feed)
        elif exp:
            flags |= NOFEED
        return cost, credit, flags

    def _close_hours(self, hour):
        """Price the open hour once a later hour begins; book its cost into day and month."""
        open_hour = self._open_hour
        if open_hour is None or open_hour >= hour:
            return False
        self._open_hour = None
        base = self.hours.find(open_hour)
        if base < 0:
            return True
        d = self.hours.data
        cost, credit, flags = self._price(open_hour, d[base + IMP], d[base + EXP])
        d[base + COST] = cost
        d[base + CREDIT] = credit
        d[base + FLAGS] |= flags
        self._book(local_day(open_hour * 3600, self._std, self._eu), 0, 0, cost, credit, flags)
        return True

    # -- reading -------------------------------------------------------------------------------
    def open_cost(self):
        """``(hour, cost, credit, flags)`` of the hour still open (priced as of now), or None."""
        hour = self._open_hour
        if hour is None:
            return None
        base = self.hours.find(hour)
        if base < 0:
            return None
        d = self.hours.data
        cost, credit, flags = self._price(hour, d[base + IMP], d[base + EXP])
        return hour, cost, credit, flags

    def period(self, ring, key):
        """``(imp, exp, cost, credit, flags)`` of ``key`` in ``ring`` (one of ``hours``,
        ``days``, ``months``; the open hour's cost included), or None when there is no row."""
        base = ring.find(key)
        if base < 0:
            return None
        d = ring.data
        imp = d[base + IMP]
        exp = d[base + EXP]
        cost = d[base + COST]
        credit = d[base + CREDIT]
        flags = d[base + FLAGS]
        open_ = self.open_cost()
        if open_ is not None:
            hour = open_[0]
            if ring is self.hours:
                match = hour == key
            else:
                day = local_day(hour * 3600, self._std, self._eu)
                match = (day if ring is self.days else month_of_day(day)) == key
            if match:
                cost += open_[1]
                credit += open_[2]
                flags |= open_[3]
        return imp, exp, cost, credit, flags

    def day_key(self, epoch):
        """The local day number of UTC ``epoch``."""
        return local_day(epoch, self._std, self._eu)

    # -- file ------------------------------------------------------------------------------------
    def to_bytes(self):
        """The summary as bytes (header with a checksum, then the three rings)."""
        self.seq += 1
        body = bytearray()
        for ring in (self.hours, self.days, self.months):
            body.extend(_i32(ring.count))
            body.extend(_i32(ring.head))
            body.extend(bytes(ring.data))
        head = bytearray(_MAGIC)
        for v in (
            (HOURS << 16) | (DAYS << 8) | MONTHS,
            self.seq,
            self.last_epoch if self.last_epoch is not None else -1,
            self.last_imp if self.last_imp is not None else -1,
            self.last_exp if self.last_exp is not None else -1,
            self.jumps,
        ):
            head.extend(_i32(v))
        head.extend(_i32(checksum(body)))
        return bytes(head) + bytes(body)

    def from_bytes(self, data):
        """Load what :meth:`to_bytes` made. :raises ValueError: when it is not that (damaged)."""
        if len(data) != size_bytes() or data[:4] != _MAGIC:
            raise ValueError("not a usage summary")
        head = [_u32(data, 4 + 4 * k) for k in range(7)]
        if head[0] != (HOURS << 16) | (DAYS << 8) | MONTHS:
            raise ValueError("other ring sizes")
        body = memoryview(data)[_HEAD:]
        if checksum(body) != head[6] & 0xFFFFFFFF:
            raise ValueError("checksum")
        rings = (self.hours, self.days, self.months)
        pos = 0
        loaded = []
        for ring in rings:
            count = _u32(body, pos)
            headi = _u32(body, pos + 4)
            n = ring.size * _FIELDS * 4
            if count > ring.size or (count and not 0 <= headi < ring.size):
                raise ValueError("bad ring")
            loaded.append((count, headi, bytes(body[pos + 8 : pos + 8 + n])))
            pos += 8 + n
        for ring, (count, headi, raw) in zip(rings, loaded):
            ring.count = count
            ring.head = headi if count else -1
            ring.data = array("i", raw)
        self.seq = head[1]
        self.last_epoch = None if head[2] == -1 else head[2]
        self.last_imp = None if head[3] == -1 else head[3]
        self.last_exp = None if head[4] == -1 else head[4]
        self.jumps = head[5]
        # the hour of the last telegram is never closed yet (a later telegram closes it)
        self._open_hour = None
        if self.last_epoch is not None and self.hours.find(self.last_epoch // 3600) >= 0:
            self._open_hour = self.last_epoch // 3600

    def clear(self):
        for ring in (self.hours, self.days, self.months):
            ring.clear()
        self.last_epoch = self.last_imp = self.last_exp = None
        self._open_hour = None
        self.jumps = self.gaps = self.samples = 0


def size_bytes():
    """Bytes of :meth:`Usage.to_bytes` (the summary file)."""
    return _HEAD + 8 * 3 + (HOURS + DAYS + MONTHS) * _FIELDS * 4


def _i32(v):
    v &= 0xFFFFFFFF
    return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24))


def _u32(b, pos):
    v = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16) | (b[pos + 3] << 24)
    return v - (1 << 32) if v & 0x80000000 else v


def checksum(data):
    """Fletcher-32 over ``data`` (bytes-like, even or odd length)."""
    a = b = 0
    n = len(data)
    i = 0
    while i < n:
        end = i + 720 if i + 720 < n else n  # 360 words keep a, b below 2**32
        while i < end:
            w = data[i] | ((data[i + 1] << 8) if i + 1 < n else 0)
            a += w
            b += a
            i += 2
        a %= 65535
        b %= 65535
    return (b << 16) | a
