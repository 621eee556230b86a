# SPDX-License-Identifier: MIT
"""What lies ahead, for the TFT, the web page and Home Assistant: the cheapest 1, 2 and 3 hours
to come, and the open quarter hour against the month's demand peak. Pure logic.

:class:`Outlook` holds the :class:`~smartmeter.datalog.cheapest.Cheapest` search and the grid
fees, and is reached as ``tariff.outlook`` (``app._usage`` makes it). The cheapest window uses
the day-ahead prices (per quarter hour, or per hour for every quarter of it) plus each quarter's
grid fee; without day-ahead prices it uses the fixed price when the grid fee varies by time of
day (``GRID_FEE_WINDOWS``), else there is no cheapest time to show. :meth:`Outlook.refresh` runs
the search only when the prices changed or a new quarter began (see ``cheapest.py``).
"""

from .cheapest import HOURS, NONE, Cheapest
from .peaks import TOP, demand
from .usage import local_day, month_of_day


class Outlook:
    """:param tariff: the shared :class:`~smartmeter.datalog.usage.Tariff`
    :param fees: a :class:`~smartmeter.datalog.gridfee.GridFees` or None"""

    def __init__(self, tariff, fees=None):
        self.tariff = tariff
        self.fees = fees
        self.cheapest = Cheapest()
        self._price = self.price  # one bound method, made once (not per search)

    def price(self, q):
        """Energy price (mct/kWh) of quarter ``q`` for the search, or None."""
        tariff = self.tariff
        price, dynamic = tariff.import_q(q)
        if dynamic:
            return price
        if tariff.market_quarters():
            return None  # outside the day-ahead prices: not comparable with them
        fees = self.fees
        if fees is not None and fees.varies():
            return price if price is not None else 0
        return None

    def refresh(self, now):
        """Recompute the cheapest windows when due (prices changed, a new quarter)."""
        if now is None:
            return False
        return self.cheapest.update(now, self._price, self.fees, self.tariff.version)

    def fill(self, values, usage, epoch, power_w):
        """:func:`fill` (``state.ahead`` for MQTT)."""
        fill(values, usage, epoch, power_w)

    def windows(self):
        """``[(hours, start_quarter, avg_mct), ...]`` of the windows found."""
        ch = self.cheapest
        return [
            (HOURS[k], ch.start[k], ch.avg_mct[k]) for k in range(len(HOURS)) if ch.start[k] != NONE
        ]


def month_key(usage, epoch):
    """The local month (year * 12 + month - 1) of UTC ``epoch``, as the summary counts it."""
    return (
        month_of_day(usage.day_key(epoch)) if usage is not None else month_of_day(local_day(epoch))
    )


_KEYS = (
    "cheapest_1h",
    "cheapest_2h",
    "cheapest_3h",
    "peak_1",
    "peak_2",
    "peak_3",
    "peak_1_at",
    "peak_2_at",
    "peak_3_at",
    "quarter_avg",
    "quarter_projected",
)


def fill(values, usage, epoch, power_w):
    """The outlook for MQTT/Home Assistant (``state.ahead``, keys of ``outputs/hass.py``):
    quarter numbers (published as local ISO times) and W; None where there is nothing."""
    extras = values
    for key in _KEYS:
        extras[key] = None
    if usage is None or epoch is None:
        return
    tariff = usage.tariff
    outlook = getattr(tariff, "outlook", None) if tariff is not None else None
    if outlook is not None:
        outlook.refresh(epoch)
        start = outlook.cheapest.start
        for k in range(len(HOURS)):
            if start[k] != NONE:
                extras[_KEYS[k]] = start[k]
    peaks = usage.peaks
    if peaks.month == month_key(usage, epoch):
        for i in range(TOP):
            if peaks.at[i] != NONE:
                extras[_KEYS[3 + i]] = peaks.w[i]
                extras[_KEYS[6 + i]] = peaks.at[i]
    now = demand(usage, epoch, power_w)
    if now is not None:
        extras["quarter_avg"] = now[0]
        extras["quarter_projected"] = now[1]


def _ct(mct):
    sign = "-" if mct < 0 else ""
    whole, frac = divmod(abs(mct), 1000)
    return "%s%d.%03d" % (sign, whole, frac)


def json_text(usage, epoch, power_w):
    """``"outlook":{...}`` for ``/api/usage`` (docs/web-api.md): the cheapest windows, the
    month's peaks, the open quarter's demand and the grid fee now."""
    from ..timeutil import iso_local

    tariff = usage.tariff if usage is not None else None
    outlook = getattr(tariff, "outlook", None) if tariff is not None else None
    parts = []
    wins = []
    if outlook is not None and epoch is not None:
        outlook.refresh(epoch)
        for hours, q, avg in outlook.windows():
            wins.append(
                '{"hours":%d,"start":%d,"start_local":"%s","avg_ct_kwh":%s}'
                % (hours, q * 900, iso_local(q * 900), _ct(avg))
            )
    parts.append('"cheapest":[%s]' % ",".join(wins))
    top = []
    month = None
    if usage is not None and epoch is not None:
        month = month_key(usage, epoch)
        peaks = usage.peaks
        if peaks.month == month:
            for i in range(TOP):
                q = peaks.at[i]
                if q != NONE:
                    top.append(
                        '{"w":%d,"start":%d,"start_local":"%s"}'
                        % (peaks.w[i], q * 900, iso_local(q * 900))
                    )
    now = demand(usage, epoch, power_w)
    parts.append(
        '"peaks":{"month":%s,"top":[%s],"quarter_start":%s,"quarter_running_w":%s,'
        '"quarter_projected_w":%s}'
        % (
            "null" if month is None else '"%04d-%02d"' % (month // 12, month % 12 + 1),
            ",".join(top),
            "null" if now is None else str(epoch - epoch % 900),
            "null" if now is None or now[0] is None else str(now[0]),
            "null" if now is None else str(now[1]),
        )
    )
    fees = outlook.fees if outlook is not None else None
    if fees is not None and fees.active():
        parts.append(
            '"grid_fee":{"ct_kwh":%s,"windows":%d,"now_ct_kwh":%s}'
            % (
                _ct(fees.base_mct),
                fees.n,
                "null" if epoch is None else _ct(fees.fee(epoch - epoch % 900)),
            )
        )
    return '"outlook":{' + ",".join(parts) + "}"
