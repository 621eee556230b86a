# SPDX-License-Identifier: MIT
"""Calendar arithmetic without ``datetime`` (absent on CircuitPython), and wrap-safe ticks.

Integer seconds only: CircuitPython floats have a 22-bit mantissa. Austria's local time is CET
(UTC+1) with EU summer time (UTC+2) from the last Sunday of March 01:00 UTC to the last Sunday of
October 01:00 UTC - used only when a meter leaves its UTC deviation unspecified.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_TICKS_PERIOD = const(1 << 29)  # supervisor.ticks_ms() wraps here on CircuitPython
_TICKS_MAX = const((1 << 29) - 1)
_TICKS_HALF = const(1 << 28)


def ticks_diff(new, old):
    """``new - old`` for ticks that wrap at 2**29, correct for differences below 2**28 ms."""
    return ((new - old + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


def ticks_add(ticks, delta):
    """``ticks + delta`` wrapped like the device's ticks."""
    return (ticks + delta) % _TICKS_PERIOD


class Backoff:
    """Exponential retry delay on the app's ticks: ``min_ms`` doubling to ``max_ms``.

    ``fail(now)`` schedules the next attempt, ``wait(now, ms)`` any other delay (a batch
    interval), ``ok()`` makes it due at once with the delay reset, ``due(now)`` asks.
    """

    def __init__(self, min_ms, max_ms):
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.delay = 0  # ms waited after the last failure (0 while healthy)
        self.failures = 0  # in a row
        self.next = None  # ticks of the next attempt; None = due now

    def fail(self, now):
        """A failed attempt at ``now``: the next one waits twice as long (capped)."""
        d = self.delay
        self.delay = self.min_ms if d == 0 else min(2 * d, self.max_ms)
        self.failures += 1
        self.next = ticks_add(now, self.delay)
        return self.next

    def wait(self, now, ms):
        """Next attempt ``ms`` after ``now``, the failure delay unchanged."""
        self.next = ticks_add(now, ms)

    def ok(self):
        """Success: due at once, delay reset."""
        self.delay = 0
        self.failures = 0
        self.next = None

    def due(self, now):
        return self.next is None or ticks_diff(now, self.next) >= 0

    def left(self, now):
        """Milliseconds until due (0 when due)."""
        if self.next is None:
            return 0
        left = ticks_diff(self.next, now)
        return left if left > 0 else 0


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    """(year, month, day) of a day number since 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def epoch_from_fields(fields):
    """(y, mo, d, h, mi, s) taken as UTC -> epoch seconds."""
    y, mo, d, h, mi, s = fields
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def fields_from_epoch(epoch):
    """Epoch seconds -> (y, mo, d, h, mi, s) in UTC."""
    days, rem = divmod(int(epoch), 86400)
    y, mo, d = civil_from_days(days)
    return (y, mo, d, rem // 3600, rem % 3600 // 60, rem % 60)


def _last_sunday_utc_1am(year, month):
    days = days_from_civil(year, month, 31)
    return (days - (days + 4) % 7) * 86400 + 3600  # 1970-01-01 (day 0) was a Thursday


def eu_offset(epoch, std_min=60):
    """UTC offset in minutes at UTC ``epoch`` under EU rules: summer time (+60) from the last
    Sunday of March to the last Sunday of October, switching at 01:00 UTC."""
    year = civil_from_days(int(epoch) // 86400)[0]
    if _last_sunday_utc_1am(year, 3) <= epoch < _last_sunday_utc_1am(year, 10):
        return std_min + 60
    return std_min


def vienna_offset_at(epoch):
    """Minutes east of UTC in Austria at UTC ``epoch`` (60 in winter, 120 in summer)."""
    return eu_offset(epoch, 60)


def utc_epoch(fields, offset=None, dst=None):
    """Meter local time -> UTC epoch seconds, and the offset used (minutes east of UTC).

    The meter's own deviation wins. Without it, Austrian rules apply; in the repeated October
    hour the meter's DST status bit decides if it was sent, else standard time.
    """
    local = epoch_from_fields(fields)
    if offset is not None:
        return local - offset * 60, offset
    summer = local - 7200
    winter = local - 3600
    summer_ok = vienna_offset_at(summer) == 120
    winter_ok = vienna_offset_at(winter) == 60
    if summer_ok and (not winter_ok or dst):
        return summer, 120
    return winter, 60


def format_offset(offset):
    """+60 -> "+01:00"."""
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    return "%s%02d:%02d" % (sign, offset // 60, offset % 60)


def iso_local(epoch, std_min=60, eu=True):
    """UTC ``epoch`` as local ISO 8601 time with its offset: "2026-10-25T02:15:00+01:00"
    (EU summer time when ``eu``), what Home Assistant's timestamp sensors take."""
    off = eu_offset(epoch, std_min) if eu else std_min
    y, mo, d, h, mi, s = fields_from_epoch(int(epoch) + off * 60)
    return "%04d-%02d-%02dT%02d:%02d:%02d%s" % (y, mo, d, h, mi, s, format_offset(off))
