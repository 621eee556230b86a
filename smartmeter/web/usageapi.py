# SPDX-License-Identifier: MIT
"""``/api/usage`` (JSON) and ``/api/usage.csv``: the usage summary per quarter hour, hour, day or
month.

Rows come from :class:`smartmeter.datalog.usage.Usage`: the last 24 hours, 31 days or 12 months
up to the latest telegram, oldest first; quarters: every quarter of yesterday and today (local
days: 92 to 100 quarters each), the ones after the latest telegram with their known prices only
(``future``). A period without data is a row with ``null`` energy (a gap, never 0). Energies in
Wh; money in cent as decimal numbers with 3 places (the summary counts milli-cent). Streamed in
pieces like the other long answers. The quarter CSV starts with the columns of the Austrian grid
operators' quarter-hour export (``Datum;Zeit von;Zeit bis;Verbrauch [kWh]``, local time). See
docs/web-api.md.
"""

from ..datalog.outlook import json_text as outlook_json
from ..datalog.usage import (
    DYNAMIC,
    FEED_DYNAMIC,
    FULL_Q_S,
    FULL_S,
    GAP,
    JUMP,
    NOFEED,
    NOPRICE,
    month_of_day,
)
from ..protocol.reading import P_PLUS
from ..timeutil import civil_from_days, eu_offset

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


RESOLUTIONS = {"quarter": 2, "hour": 24, "day": 31, "month": 12}  # quarter: 2 local days
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


def _opt_ct(mct):
    return _ct(mct) if mct is not None else "null"


def _eur(mct):
    """Milli-cent -> thousandths of a euro, rounded (printed like kWh: "1.234")."""
    return (mct + 50) // 100 if mct >= 0 else -((-mct + 50) // 100)


def _local_midnight_utc(day):
    local = day * 86400
    return local - eu_offset(local - 3600, 60) * 60


def periods(usage, resolution, now):
    """``[(label, start_utc, row_or_None, fee_mct, grid_mct), ...]`` oldest first (see module
    doc); ``grid_mct`` is the grid part (None without grid fees)."""
    n = RESOLUTIONS[resolution]
    out = []
    if usage is None or now is None:
        return out
    fee = usage.tariff.base_fee_mct if usage.tariff is not None else 0
    if resolution == "quarter":
        return out  # see quarter_periods()
    if resolution == "hour":
        last = now // 3600
        for h in range(last - n + 1, last + 1):
            local = h * 3600 + eu_offset(h * 3600, 60) * 60
            label = "%02d:00" % (local // 3600 % 24)
            row = usage.period(usage.hours, h)
            out.append((label, h * 3600, row, 0, usage.grid_part(usage.hours, h)))
    elif resolution == "day":
        today = usage.day_key(now)
        for d in range(today - n + 1, today + 1):
            y, m, dd = civil_from_days(d)
            label = "%04d-%02d-%02d" % (y, m, dd)
            row = usage.period(usage.days, d)
            out.append((label, _local_midnight_utc(d), row, 0, usage.grid_part(usage.days, d)))
    else:
        this = month_of_day(usage.day_key(now))
        for key in range(this - n + 1, this + 1):
            y, m = key // 12, key % 12 + 1
            label = "%04d-%02d" % (y, m)
            start = _local_midnight_utc(_days(y, m))
            row = usage.period(usage.months, key)
            grid = usage.grid_part(usage.months, key)
            out.append((label, start, row, fee if row is not None else 0, grid))
    return out


def quarter_periods(usage, now):
    """``(date, time_from, time_to, start_utc, q, row_or_None, future)`` for every quarter of
    yesterday and today (local), oldest first: ``row`` is :meth:`Usage.quarter`'s."""
    if usage is None or now is None:
        return
    today = usage.day_key(now)
    first = usage.day_start(today - 1) // 900
    end = usage.day_start(today + 1) // 900
    now_q = now // 900
    for q in range(first, end):
        t = q * 900
        off = eu_offset(t, 60) * 60
        local = t + off
        y, m, d = civil_from_days(local // 86400)
        mins = local % 86400 // 60
        to = (mins + 15) % 1440
        yield (
            "%02d.%02d.%04d" % (d, m, y),
            "%02d:%02d" % (mins // 60, mins % 60),
            "%02d:%02d" % (to // 60, to % 60),
            t,
            q,
            usage.quarter(q) if q <= now_q else None,
            q > now_q,
        )


def _quarter_prices(tariff, q, row):
    """``(import mct/kWh, export mct/kWh)`` of quarter ``q``: the ones it was costed with, else
    what the tariff says now (None: unknown)."""
    price = feed = None
    if row is not None:
        price, feed = row[5], row[6]
    if tariff is not None:
        if price is None:
            price = tariff.import_q(q)[0]
        if feed is None:
            feed = tariff.export_q(q)[0]
    return price, feed


def _quarter_grid(usage, q, row):
    """``(grid fee mct/kWh, grid part mct)`` of quarter ``q``: as it was costed, or for a
    quarter without data the fee the settings give it; None without grid fees."""
    tariff = usage.tariff if usage is not None else None
    if tariff is None or tariff.grid_q(q) is None:
        return None
    got = usage.quarter_grid(q) if row is not None else None
    return got if got is not None else (tariff.grid_q(q), None)


def _quarter_json(usage, tariff, date, frm, to, start, q, row, future):
    price, feed = _quarter_prices(tariff, q, row)
    head = '"label":"%s","date":"%s","to":"%s","start":%d' % (frm, date, to, start)
    prices = '"price_ct_kwh":%s,"feed_in_ct_kwh":%s' % (
        _ct(price) if price is not None else "null",
        _ct(feed) if feed is not None else "null",
    )
    grid = _quarter_grid(usage, q, row)
    if grid is not None:
        prices += ',"grid_fee_ct_kwh":%s,"grid_ct":%s' % (_ct(grid[0]), _opt_ct(grid[1]))
    if row is None:
        return '{%s,"import_wh":null,"export_wh":null,%s,"%s":true}' % (
            head,
            prices,
            "future" if future else "gap",
        )
    imp, exp, cost, credit, flags, _p, _f = row
    cover = flags >> 8
    return (
        "{"
        + ",".join(
            (
                head,
                '"import_wh":%d,"export_wh":%d' % (imp, exp),
                '"cost_ct":%s' % (_ct(cost) if cost is not None else "null"),
                '"credit_ct":%s' % (_ct(credit) if credit is not None else "null"),
                prices,
                '"gap":%s' % ("true" if flags & GAP else "false"),
                '"meter_change":%s' % ("true" if flags & JUMP else "false"),
                '"dynamic":%s' % ("true" if flags & DYNAMIC else "false"),
                '"feed_in_dynamic":%s' % ("true" if flags & FEED_DYNAMIC else "false"),
                '"partial":%s' % ("true" if cover < FULL_Q_S else "false"),
            )
        )
        + "}"
    )


def _days(y, m):
    from ..timeutil import days_from_civil

    return days_from_civil(y, m, 1)


def _now(state):
    usage = state.usage
    if usage is not None and usage.last_epoch is not None:
        return usage.last_epoch
    return state.latest_epoch


def _row_json(label, start, row, fee, grid, priced, feed):
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
    if grid is not None:
        parts.append('"grid_ct":%s' % _ct(grid))
    return "{" + ",".join(parts) + "}"


def json_chunks(state, resolution):
    """The ``/api/usage`` answer in pieces."""
    usage = state.usage
    tariff = usage.tariff if usage is not None else None
    priced = tariff is not None and (tariff.price_mct or tariff.market_hours())
    feed = tariff is not None and tariff.has_feed_in()
    now = _now(state)
    head = ['{"resolution":"%s","now":%s' % (resolution, "null" if now is None else now)]
    if tariff is not None:
        q = now // 900 if now is not None else None
        now_next = (
            (
                tariff.import_q(q)[0],
                tariff.import_q(q + 1)[0],
                tariff.export_q(q)[0],
                tariff.export_q(q + 1)[0],
            )
            if q is not None
            else (None, None, None, None)
        )
        head.append(
            '"tariff":{"price_ct_kwh":%s,"feed_in_ct_kwh":%s,"base_fee_ct_month":%s,'
            '"price_now_ct_kwh":%s,"price_next_ct_kwh":%s,"feed_in_now_ct_kwh":%s,'
            '"feed_in_next_ct_kwh":%s,"feed_in_dynamic":%s,"market_hours":%d,'
            '"market_quarters":%d}'
            % (
                _ct(tariff.price_mct) if tariff.price_mct else "null",
                _ct(tariff.feed_in_mct) if tariff.feed_in_mct else "null",
                _ct(tariff.base_fee_mct) if tariff.base_fee_mct else "null",
                _opt_ct(now_next[0]),
                _opt_ct(now_next[1]),
                _opt_ct(now_next[2]),
                _opt_ct(now_next[3]),
                "true" if tariff.feed_in_dynamic else "false",
                tariff.market_hours(),
                tariff.market_quarters(),
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
        latest = state.latest
        power = latest.values.get(P_PLUS) if latest is not None else None
        head.append(outlook_json(usage, now, power))
    yield ",".join(head) + ',"rows":['
    piece = []
    first = True
    if resolution == "quarter":
        texts = (_quarter_json(usage, tariff, *p) for p in quarter_periods(usage, now))
    else:
        texts = (_row_json(*p, priced, feed) for p in periods(usage, resolution, now))
    for text in texts:
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
    feed = tariff is not None and tariff.has_feed_in()
    if resolution == "quarter":
        yield from _quarter_csv(state, usage, tariff, comma, sep)
        return
    grids = tariff is not None and tariff.fees is not None and tariff.fees.active()
    names = ["cost EUR", "grid EUR"] if grids else ["cost EUR"]  # grid: with GRID_FEE_* only
    yield (
        sep.join(
            [resolution, "start UTC", "import kWh", "export kWh"]
            + names
            + ["credit EUR", "base fee EUR", "note"]
        )
        + "\r\n"
    )
    for label, start, row, fee, grid in periods(usage, resolution, _now(state)):
        if row is None:
            empty = ("",) * (5 if grids else 4)
            yield sep.join((label, str(start)) + empty + ("", "no data")) + "\r\n"
            continue
        imp, exp, cost, credit, flags = row
        note = []
        if flags & GAP:
            note.append("gap")
        if flags & JUMP:
            note.append("meter change")
        fields = [
            label,
            str(start),
            _kwh(imp, comma),
            _kwh(exp, comma),
            _kwh(_eur(cost), comma) if priced and not flags & NOPRICE else "",
            _kwh(_eur(credit), comma) if feed and not flags & NOFEED else "",
            _kwh(_eur(fee), comma) if fee else "",
            " ".join(note),
        ]
        if grids:
            fields.insert(5, _kwh(_eur(grid), comma) if grid is not None else "")
        yield sep.join(fields) + "\r\n"


def _quarter_csv(state, usage, tariff, comma, sep):
    """Quarter rows up to now; the first four columns as the grid operators' portals export
    quarter-hour values (Wiener Netze: ``Datum;Zeit von;Zeit bis;Verbrauch [kWh]``, local
    time, decimal comma), then export, the prices, cost and credit; with grid fees
    (``GRID_FEE_*``) also the grid fee and the grid part."""
    grids = tariff is not None and tariff.fees is not None and tariff.fees.active()
    names = [
        "Datum",
        "Zeit von",
        "Zeit bis",
        "Verbrauch [kWh]",
        "Einspeisung [kWh]",
        "Preis [ct/kWh]",
        "Kosten [EUR]",
        "Einspeisetarif [ct/kWh]",
        "Gutschrift [EUR]",
    ]
    if grids:
        names += ["Netzentgelt [ct/kWh]", "Netzkosten [EUR]"]
    yield sep.join(names + ["start UTC", "note"]) + "\r\n"
    for date, frm, to, start, q, row, future in quarter_periods(usage, _now(state)):
        if future:
            break
        price, feed = _quarter_prices(tariff, q, row)
        p = _kwh(price, comma) if price is not None else ""
        f = _kwh(feed, comma) if feed is not None else ""
        extra = ()
        if grids:
            got = _quarter_grid(usage, q, row)
            extra = (
                _kwh(got[0], comma) if got is not None else "",
                _kwh(_eur(got[1]), comma) if got is not None and got[1] is not None else "",
            )
        if row is None:
            empty = (date, frm, to, "", "", p, "", f, "")
            yield sep.join(empty + extra + (str(start), "no data")) + "\r\n"
            continue
        imp, exp, cost, credit, flags, _p, _f = row
        note = []
        if flags & GAP:
            note.append("gap")
        if flags & JUMP:
            note.append("meter change")
        fields = (
            date,
            frm,
            to,
            _kwh(imp, comma),
            _kwh(exp, comma),
            p,
            _kwh(_eur(cost), comma) if cost is not None else "",
            f,
            _kwh(_eur(credit), comma) if credit is not None else "",
        )
        yield sep.join(fields + extra + (str(start), " ".join(note))) + "\r\n"
