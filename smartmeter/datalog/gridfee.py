# SPDX-License-Identifier: MIT
"""Grid fees by time of day: ``GRID_FEE_CT_KWH`` and ``GRID_FEE_WINDOWS``. Pure logic.

The bill per kWh is the energy price (``PRICE_CT_KWH`` or the day-ahead price) plus the grid
fee. ``GRID_FEE_CT_KWH`` is the grid fee per kWh at all times (gross, what the bill says, like
``PRICE_CT_KWH``: an operator's net figure x 1.2); ``GRID_FEE_WINDOWS`` lists times with another
fee, ``;`` between windows, each window four fields separated by spaces::

    MONTHS DAYS HOURS FEE
    4-9    Mo-So 10-16 6.8      April to September, every day, 10:00-16:00, 6.8 ct/kWh
    4-9    *     10-16 -20%     the same, 20 % below GRID_FEE_CT_KWH

- MONTHS: ``4``, ``4-9``, ``10-3`` (over the new year), lists ``1-3,11-12``, ``*`` = all.
- DAYS: ``Mo Di Mi Do Fr Sa So`` (or ``Mo Tu We Th Fr Sa Su``), ranges ``Mo-Fr``, lists
  ``Sa,So``, ``*`` = all.
- HOURS: local time from-to, ``10-16`` = 10:00 up to 16:00; quarter hours ``6:30-8:45``;
  ``22-6`` runs over midnight; ``0-24`` or ``*`` = the whole day.
- FEE: ct/kWh (``6.8`` or ``6,8``, up to 3 decimals), or ``+N%``/``-N%`` of GRID_FEE_CT_KWH.
- A ``;`` with nothing after it (at the end) is no window.

Month and weekday are those of the local date of the quarter hour itself (also after midnight
in a ``22-6`` window), local time under the EU rule (CET/CEST), so a window follows the clock
change. The first window that matches a quarter hour wins; none: ``GRID_FEE_CT_KWH``. At most
``MAX_WINDOWS`` windows; kept in one preallocated int array (20 bytes a window).
"""

from array import array

from ..timeutil import civil_from_days, eu_offset

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


MAX_WINDOWS = const(8)
_W = const(5)  # month mask, weekday mask, from (quarter of day), to, fee mct/kWh
_DAYS = (
    ("mo",),
    ("di", "tu"),
    ("mi", "we"),
    ("do", "th"),
    ("fr",),
    ("sa",),
    ("so", "su"),
)


def _mask(field, lo, hi, name_of):
    """Bit mask of a ``*``/list/range field; ``name_of(text)`` -> number in lo..hi or None."""
    if field == "*":
        return (1 << (hi - lo + 1)) - 1
    mask = 0
    for item in field.split(","):
        a, dash, b = item.partition("-")
        first = name_of(a)
        last = name_of(b) if dash else first
        if first is None or last is None:
            return None
        n = first
        while True:
            mask |= 1 << (n - lo)
            if n == last:
                break
            n = n + 1 if n < hi else lo  # 10-3 and Sa-Mo wrap around
    return mask


def _month(text):
    if text.isdigit() and 1 <= int(text) <= 12:
        return int(text)
    return None


def _weekday(text):
    text = text.lower()
    for i, names in enumerate(_DAYS):
        if text in names:
            return i
    return None


def _quarter(text):
    """ "10" or "10:15" -> quarter of the day (0-96), or None."""
    h, colon, m = text.partition(":")
    if not h.isdigit() or (colon and not (m.isdigit() and len(m) == 2)):
        return None
    h = int(h)
    m = int(m) if colon else 0
    if m % 15 or h > 24 or (h == 24 and m):
        return None
    return h * 4 + m // 15


def _milli(text):
    """ "6.8" / "6,8" / "-20" -> thousandths (6800), integer math; ValueError when bad."""
    text = text.replace(",", ".")
    neg = text[:1] == "-"
    if neg or text[:1] == "+":
        text = text[1:]
    whole, _dot, frac = text.partition(".")
    if not (whole or frac) or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
        raise ValueError("number")
    if len(frac) > 3:
        raise ValueError("at most 3 decimals")
    value = int(whole or "0") * 1000 + int((frac + "000")[:3])
    return -value if neg else value


def _div_round(a, b):
    if a < 0:
        return -((-a + b // 2) // b)
    return (a + b // 2) // b


def parse(text, base_mct=0):
    """``GRID_FEE_WINDOWS`` text -> ``[(months, days, from_q, to_q, fee_mct, percent), ...]``.

    ``months`` and ``days`` are bit masks (bit 0 = January / Monday), ``from_q``/``to_q``
    quarters of the local day (``to_q`` may be below ``from_q``: over midnight), ``fee_mct``
    the fee in milli-cent per kWh (a percentage applied to ``base_mct``), ``percent`` True for
    a percentage.

    :raises ValueError: with a message that names the window and the field that is wrong
    """
    out = []
    text = text.strip()
    if not text:
        return out
    for n, window in enumerate(text.split(";"), 1):
        fields = window.split()
        if not fields:
            continue  # "...; " at the end, or ";;": nothing there
        where = "window %d (%s)" % (n, " ".join(fields))
        if len(fields) != 4:
            raise ValueError(
                "%s: needs 4 fields MONTHS DAYS HOURS FEE, e.g. 4-9 Mo-So 10-16 6.8" % where
            )
        if len(out) >= MAX_WINDOWS:
            raise ValueError("has more than %d windows" % MAX_WINDOWS)
        months = _mask(fields[0], 1, 12, _month)
        if months is None:
            raise ValueError("%s: months must be 1-12, a range like 4-9, or *" % where)
        days = _mask(fields[1], 0, 6, _weekday)
        if days is None:
            raise ValueError(
                "%s: days must be Mo Di Mi Do Fr Sa So, a range like Mo-Fr, or *" % where
            )
        hours = fields[2]
        if hours == "*":
            a, b = 0, 96
        else:
            fa, dash, fb = hours.partition("-")
            a = _quarter(fa)
            b = _quarter(fb) if dash else None
            if a is None or b is None or a in (b, 96):
                raise ValueError(
                    "%s: hours must be from-to in local time, e.g. 10-16 or 6:30-8:45"
                    " (quarter hours)" % where
                )
        fee = fields[3]
        percent = fee.endswith("%")
        try:
            value = _milli(fee[:-1] if percent else fee)
        except ValueError:
            raise ValueError(
                "%s: the fee must be ct/kWh like 6.8 or a change like -20%%" % where
            ) from None
        if percent:
            if fee[:1] not in "+-" or not -100_000 <= value <= 1_000_000:
                raise ValueError("%s: a percentage must be like -20%% or +10%%" % where)
            value = _div_round(base_mct * (100_000 + value), 100_000)
        elif not 0 <= value <= 1_000_000:
            raise ValueError("%s: the fee must be 0 to 1000 ct/kWh" % where)
        out.append((months, days, a, b, value, percent))
    return out


class GridFees:
    """The grid fee of any moment: ``GRID_FEE_CT_KWH`` and its windows.

    :param base_mct: ``GRID_FEE_CT_KWH`` in milli-cent per kWh (0 = no grid fee)
    :param windows: ``GRID_FEE_WINDOWS`` text (validated by config already; a bad one here
        raises ValueError)
    """

    def __init__(self, base_mct=0, windows="", std_offset_min=60, eu_dst=True):
        self.base_mct = base_mct
        self._std = std_offset_min
        self._eu = eu_dst
        self._w = array("i", bytes(4 * MAX_WINDOWS * _W))
        rows = parse(windows or "", base_mct)
        self.n = len(rows)
        for i, row in enumerate(rows):
            for f in range(_W):
                self._w[i * _W + f] = row[f]

    def active(self):
        """True when there is any grid fee at all."""
        return bool(self.base_mct or self.n)

    def varies(self):
        """True when the fee depends on the time (there are windows)."""
        return self.n > 0

    def fee(self, epoch):
        """Grid fee in milli-cent per kWh at UTC ``epoch`` (a quarter's start)."""
        w = self._w
        if not self.n:
            return self.base_mct
        off = eu_offset(epoch, self._std) if self._eu else self._std
        local = epoch + off * 60
        day = local // 86400
        q = local % 86400 // 900
        wd = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        month = civil_from_days(day)[1]
        for i in range(self.n):
            b = i * _W
            if not w[b] >> (month - 1) & 1 or not w[b + 1] >> wd & 1:
                continue
            a = w[b + 2]
            z = w[b + 3]
            if (a <= q < z) if a < z else (q >= a or q < z):
                return w[b + 4]
        return self.base_mct

    def describe(self):
        """``[(months, days, from_q, to_q, fee_mct), ...]`` of the windows (for the page)."""
        w = self._w
        return [tuple(w[i * _W + f] for f in range(_W)) for i in range(self.n)]
