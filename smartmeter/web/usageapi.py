# SPDX-License-Identifier: MIT
"""``/api/usage`` (JSON) and ``/api/usage.csv``: the usage summary per hour, day or month.

Rows come from :class:`smartmeter.datalog.usage.Usage`: the last 24 hours, 31 days or 12 months
up to the latest telegram, oldest first. A period without data is a row with ``null`` energy
(a gap, never 0). Energies in Wh; money in cent as decimal numbers with 3 places (the summary
counts milli-cent). Streamed in pieces like the other long answers. See docs/web-api.md.
"""

from ..datalog.usage import DYNAMIC, FULL_S, GAP, JUMP, NOFEED, NOPRICE, month_of_day
from ..timeutil import civil_from_days, eu_offset

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


RESOLUTIONS = {"hour": 24, "day": 31, "month": 12}
_ROWS_PER_CHUNK = const(8)


def _ct(mct):
    """Milli-cent as a decimal cent number text ("12.345", "-0.500")."""
    sign = "-" if mct < 0 else ""
    whole, frac = divmod(abs(mct), 1000)
    return "%s%d.%03d" % (sign, whole, frac)


def _kwh(wh, comma):
    sign = "-" if wh < 0 else ""
    whole, frac = divmod(abs(wh), 1000)
    return ("%s%d,%03d" if comma else "%s%d.%03d") % (sign, whole, frac)


def _eur(mct):
    """Milli-cent -> thousandths of a euro, rounded (printed like kWh: "1.234")."""
    return (mct + 50) // 100 if mct >= 0 else -((-mct + 50) // 100)


def _local_midnight_utc(day):
    local = day * 86400
    return local - eu_offset(local - 3600, 60) * 60


def periods(usage, resolution, now):
    """``[(label, start_utc, row_or_None, fee_mct), ...]`` oldest first (see module doc)."""
    n = RESOLUTIONS[resolution]
    out = []
    if usage is None or now is None:
        return out
    fee = usage.tariff.base_fee_mct if usage.tariff is not None else 0
    if resolution == "hour":
        last = now // 3600
        for h in range(last - n + 1, last + 1):
            local = h * 3600 + eu_offset(h * 3600, 60) * 60
            label = "%02d:00" % (local // 3600 % 24)
            out.append((label, h * 3600, usage.period(usage.hours, h), 0))
    elif resolution == "day":
        today = usage.day_key(now)
        for d in range(today - n + 1, today + 1):
            y, m, dd = civil_from_days(d)
            label = "%04d-%02d-%02d" % (y, m, dd)
            out.append((label, _local_midnight_utc(d), usage.period(usage.days, d), 0))
    else:
        this = month_of_day(usage.day_key(now))
        for key in range(this - n + 1, this + 1):
            y, m = key // 12, key % 12 + 1
            label = "%04d-%02d" % (y, m)
            start = _local_midnight_utc(_days(y, m))
            row = usage.period(usage.months, key)
            out.append((label, start, row, fee if row is not None else 0))
    return out


def _days(y, m):
    from ..timeutil import days_from_civil

    return days_from_civil(y, m, 1)


def _now(state):
    usage = state.usage
    if usage is not None and usage.last_epoch is not None:
        return usage.last_epoch
    return state.latest_epoch


def _row_json(label, start, row, fee, priced, feed):
    if row is None:
        return '{"label":"%s","start":%d,"import_wh":null,"export_wh":null,"gap":true}' % (
            label,
            start,
        )
    imp, exp, cost, credit, flags = row
    parts = [
        '"label":"%s","start":%d,"import_wh":%d,"export_wh":%d' % (label, start, imp, exp),
        '"cost_ct":%s' % (_ct(cost) if priced and not flags & NOPRICE else "null"),
        '"credit_ct":%s' % (_ct(credit) if feed and not flags & NOFEED else "null"),
        '"gap":%s' % ("true" if flags & GAP else "false"),
        '"meter_change":%s' % ("true" if flags & JUMP else "false"),
        '"dynamic":%s' % ("true" if flags & DYNAMIC else "false"),
    ]
    cover = flags >> 8
    if cover:  # hours only
        parts.append('"partial":%s' % ("true" if cover < FULL_S else "false"))
    if fee:
        parts.append('"fee_ct":%s' % _ct(fee))
    return "{" + ",".join(parts) + "}"


def json_chunks(state, resolution):
    """The ``/api/usage`` answer in pieces."""
    usage = state.usage
    tariff = usage.tariff if usage is not None else None
    priced = tariff is not None and (tariff.price_mct or tariff.market_hours())
    feed = tariff is not None and tariff.feed_in_mct
    now = _now(state)
    head = ['{"resolution":"%s","now":%s' % (resolution, "null" if now is None else now)]
    if tariff is not None:
        price = tariff.import_price(now // 3600)[0] if now is not None else None
        head.append(
            '"tariff":{"price_ct_kwh":%s,"feed_in_ct_kwh":%s,"base_fee_ct_month":%s,'
            '"price_now_ct_kwh":%s,"market_hours":%d}'
            % (
                _ct(tariff.price_mct) if tariff.price_mct else "null",
                _ct(tariff.feed_in_mct) if tariff.feed_in_mct else "null",
                _ct(tariff.base_fee_mct) if tariff.base_fee_mct else "null",
                _ct(price) if price is not None else "null",
                tariff.market_hours(),
            )
        )
    prices = state.prices
    if prices is not None:
        head.append(
            '"prices":{"state":"%s","fetches":%d,"failures":%d,"last_error":"%s"}'
            % (
                prices.status.state,
                prices.fetches,
                prices.failures,
                prices.last_error.replace("\\", "/").replace('"', "'"),
            )
        )
    if usage is not None:
        head.append('"meter_changes":%d' % usage.jumps)
    yield ",".join(head) + ',"rows":['
    piece = []
    first = True
    for label, start, row, fee in periods(usage, resolution, now):
        text = _row_json(label, start, row, fee, priced, feed)
        piece.append(text if first else "," + text)
        first = False
        if len(piece) >= _ROWS_PER_CHUNK:
            yield "".join(piece)
            piece = []
    if piece:
        yield "".join(piece)
    yield "]}"


def csv_chunks(state, resolution, dialect="excel-de"):
    """The same rows as CSV (``;`` and decimal comma for ``excel-de``, else ``,`` and ``.``)."""
    comma = dialect == "excel-de"
    sep = ";" if comma else ","
    usage = state.usage
    tariff = usage.tariff if usage is not None else None
    priced = tariff is not None and (tariff.price_mct or tariff.market_hours())
    feed = tariff is not None and tariff.feed_in_mct
    yield (
        sep.join(
            (
                resolution,
                "start UTC",
                "import kWh",
                "export kWh",
                "cost EUR",
                "credit EUR",
                "base fee EUR",
                "note",
            )
        )
        + "\r\n"
    )
    for label, start, row, fee in periods(usage, resolution, _now(state)):
        if row is None:
            yield sep.join((label, str(start), "", "", "", "", "", "no data")) + "\r\n"
            continue
        imp, exp, cost, credit, flags = row
        note = []
        if flags & GAP:
            note.append("gap")
        if flags & JUMP:
            note.append("meter change")
        fields = (
            label,
            str(start),
            _kwh(imp, comma),
            _kwh(exp, comma),
            _kwh(_eur(cost), comma) if priced and not flags & NOPRICE else "",
            _kwh(_eur(credit), comma) if feed and not flags & NOFEED else "",
            _kwh(_eur(fee), comma) if fee else "",
            " ".join(note),
        )
        yield sep.join(fields) + "\r\n"
