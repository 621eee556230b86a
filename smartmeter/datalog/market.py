# SPDX-License-Identifier: MIT
"""Day-ahead prices in the usage summary: the tariff of a board with ``PRICE_DYNAMIC``. Pure.

:class:`MarketTariff` is a ``usage.Tariff`` that also knows the market price of each quarter
hour (``set_market``, from ``outputs/prices.py``) and prices import - and with
``FEED_IN_DYNAMIC`` export - at it. When new prices arrive, the quarters that closed without
theirs are costed again (:meth:`MarketTariff.reprice`, called by ``Usage.add``).

A board with fixed prices never loads this module (``assemble._usage`` makes a plain
``usage.Tariff`` there): its code and the market array (``_MARKET_Q`` int32, 800 bytes) stay
off its heap. Runs under the MicroPython VM.
"""

from .usage import (
    COST,
    CREDIT,
    DYNAMIC,
    EXP,
    FEED_DYNAMIC,
    FLAGS,
    IMP,
    KEY,
    NOFEED,
    NOPRICE,
    Q_FED,
    Q_FEED,
    Q_PRICE,
    Q_PRICED,
    Tariff,
    _add,
    _counts,
    _div_round,
    _zeros,
    cost_mct,
    local_day,
    month_of_day,
)

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MARKET_Q = const(200)  # quarters of market prices: today and tomorrow, also 25-hour days
_NONE = const(-0x20000000)  # "no price" in the market array (-5368 EUR/kWh: never a price)


class MarketTariff(Tariff):
    """A :class:`~smartmeter.datalog.usage.Tariff` with day-ahead prices (same parameters).

    Day-ahead prices arrive through :meth:`set_market` as EUR/MWh per UTC quarter hour; the
    gross price is ``(market / 10 + markup) * (1 + VAT)`` in ct/kWh. The market array is
    preallocated (``_MARKET_Q`` quarters from ``_q0``, ``_NONE`` = missing). Where a quarter has
    no market price, the fixed prices apply.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._q0 = 0  # quarter key of _market[0]
        self._market = _zeros(_MARKET_Q)  # net market price mct/kWh per quarter, _NONE = none
        for i in range(_MARKET_Q):
            self._market[i] = _NONE

    def set_market(self, quarters):
        """Take ``[(utc_quarter, milli_eur_per_mwh), ...]`` (quarter = epoch // 900, market
        price * 1000; from ``prices.quarters()``); keeps the newest ``_MARKET_Q`` quarters."""
        m = self._market
        for i in range(_MARKET_Q):
            m[i] = _NONE
        self._n = 0
        self.version += 1
        if not quarters:
            return
        last = quarters[0][0]
        for q, _p in quarters:
            if q > last:
                last = q
        q0 = last - _MARKET_Q + 1
        self._q0 = q0
        n = 0
        for q, milli_eur_mwh in quarters:
            i = q - q0
            if 0 <= i < _MARKET_Q:
                # EUR/MWh * 1000 -> mct/kWh: 1 EUR/MWh = 0.1 ct/kWh: milli-EUR/MWh / 10 = mct/kWh
                if m[i] == _NONE:
                    n += 1
                m[i] = _div_round(milli_eur_mwh, 10)
        self._n = n

    def market(self, q):
        """The net market price of UTC quarter ``q`` in mct/kWh, or None."""
        i = q - self._q0
        if 0 <= i < _MARKET_Q:
            p = self._market[i]
            if p != _NONE:
                return p
        return None

    def gross(self, market_mct):
        """The bill's price of a market price: ``(market + markup) * (1 + VAT)``, mct/kWh."""
        return _div_round((market_mct + self.markup_mct) * (100_000 + self.vat_mpct), 100_000)

    def import_q(self, q):
        p = self.market(q)
        if p is not None:
            return self.gross(p), True
        return Tariff.import_q(self, q)

    def export_q(self, q):
        if self.feed_in_dynamic:
            p = self.market(q)
            if p is not None:
                return p - self.feed_in_fee_mct, True
        return Tariff.export_q(self, q)

    def dynamic(self, hour):
        """The gross day-ahead price of UTC ``hour`` in mct/kWh (the mean of its four
        quarters), or None when a quarter of it has no market price."""
        total = 0
        for q in range(hour * 4, hour * 4 + 4):
            p = self.market(q)
            if p is None:
                return None
            total += self.gross(p)
        return _div_round(total, 4)

    def import_price(self, hour):
        """``(mct_per_kwh, dynamic)`` for UTC ``hour`` (mean of its quarters); ``(None, False)``
        when unknown."""
        p = self.dynamic(hour)
        if p is not None:
            return p, True
        if self.price_mct:
            return self.price_mct, False
        return None, False

    def reprice(self, usage):
        """Day-ahead prices arrived (``version`` moved; ``usage.add`` calls this): each closed
        quarter of ``usage`` that was costed without its day-ahead price (the fixed price, or
        none: after a boot the catch-up from the CSV closes quarters before the prices are
        fetched again) and has one now is costed again at it; the difference goes to its hour,
        day and month, and their 'no price' flags go when the last unpriced booking of them is
        priced. One walk over the ring, oldest first (a quarter's hour is booked when the walk
        leaves it)."""
        ring = usage.quarters
        d = ring.data
        hour = [None, 0, 0, 0, 0, 0]  # key, cost, credit, flags set, flags cleared, kept
        for base in ring.rows():
            q = d[base + KEY]
            if q >> 2 != hour[0]:
                _reprice_hour(usage, hour)
                hour[0] = q >> 2
            flags = d[base + FLAGS]
            if q != usage._open_q:
                flags = self._reprice_quarter(usage, d, base, q, flags, hour)
            hour[5] |= flags & (NOPRICE | NOFEED)
        _reprice_hour(usage, hour)

    def _reprice_quarter(self, usage, d, base, q, flags, hour):
        """Quarter ``q`` (row ``base``) at its day-ahead prices, if it was costed without and
        they are known now: its day and month booked, its hour gathered. :returns: its flags"""
        dcost = dcredit = 0
        now = clear = 0
        price, dyn = self.import_q(q)
        if dyn and not flags & DYNAMIC:
            old = cost_mct(d[base + IMP], d[base + Q_PRICE]) if flags & Q_PRICED else 0
            dcost = cost_mct(d[base + IMP], price) - old
            d[base + Q_PRICE] = price
            now = DYNAMIC | Q_PRICED
            clear = flags & NOPRICE
        feed, fdyn = self.export_q(q)
        if fdyn and not flags & FEED_DYNAMIC:
            old = cost_mct(d[base + EXP], d[base + Q_FEED]) if flags & Q_FED else 0
            dcredit = cost_mct(d[base + EXP], feed) - old
            d[base + Q_FEED] = feed
            now |= FEED_DYNAMIC | Q_FED
            clear |= flags & NOFEED
        if not now:
            return flags
        flags = (flags & ~clear) | now
        d[base + FLAGS] = flags
        now &= DYNAMIC | FEED_DYNAMIC  # what its hour, day and month get
        hour[1] += dcost
        hour[2] += dcredit
        hour[3] |= now
        hour[4] |= clear
        day = local_day(q * 900, usage._std, usage._eu)
        for r, key in ((usage.days, day), (usage.months, month_of_day(day))):
            pb = r.find(key)
            if pb < 0:
                continue
            p = r.data
            _add(p, pb + COST, dcost)
            _add(p, pb + CREDIT, dcredit)
            p[pb + FLAGS] |= now
            _counts(p, pb, clear, -1)
        return flags


def _reprice_hour(usage, hour):
    """Book what :meth:`MarketTariff.reprice` gathered for one hour: its cost and credit
    differences; 'no price' goes unless one of its quarters is still without."""
    if hour[3]:
        hb = usage.hours.find(hour[0])
        if hb >= 0:
            h = usage.hours.data
            _add(h, hb + COST, hour[1])
            _add(h, hb + CREDIT, hour[2])
            h[hb + FLAGS] = (h[hb + FLAGS] & ~(hour[4] & ~hour[5])) | hour[3]
    for i in range(1, 6):
        hour[i] = 0
