# SPDX-License-Identifier: MIT
"""Day-ahead prices per quarter hour from a price API (aWATTar's market data by default).

``PRICE_DYNAMIC = true`` and ``PRICE_API_URL`` (default ``https://api.awattar.at/v1/marketdata``)
turn it on. The answer is aWATTar's JSON: ``{"object":"list","data":[{"start_timestamp": ms,
"end_timestamp": ms, "marketprice": EUR/MWh, "unit":"Eur/MWh"}, ...]}``; items of 15, 30, 45 or
60 minutes (mixed in one answer: the market clears in quarters since 2025-10-01, older or other
sources answer in hours) give their price to each UTC quarter hour they cover (``quarters()``);
a quarter no item covers has no price. The gross price per kWh is ``(marketprice / 10 +
PRICE_MARKUP_CT_KWH) * (1 + PRICE_VAT_PERCENT / 100)`` ct (``market.MarketTariff``), each
quarter its own; quarters without one are costed at the fixed ``PRICE_CT_KWH`` (or not at all
when that is 0). No network never breaks anything.

When: at start (once the clock is set), whenever the current quarter hour has no price, and after
13:00 local time until tomorrow's prices are in (they are published around 13:00-14:00). A failed,
rejected or incomplete fetch is retried after 1 min, doubling to 1 h. So on a normal day: one
fetch.

Never blocks the loop: the fetch runs across loop passes (``smartmeter.httpget``, a
non-blocking GET), at most ``_SLICE_MS`` of work per pass, and is given up after ``_FETCH_MS``
in all (a server that trickles or says nothing). Only DNS waits; for https on CircuitPython the
TLS handshake runs in one call, which stops waiting for the server after ``_TLS_MS``. Redirects
are not followed: a 3xx is an error. The answer is parsed while it streams in (one object at a
time, at most ``_MAX_ITEMS``), never held whole in RAM.

Nothing of an answer is used before all of it is checked (:func:`validate`): a price outside
``PRICE_MIN_EUR_MWH`` .. ``PRICE_MAX_EUR_MWH`` (-10 000 .. +40 000 EUR/MWh: ten times the
harmonised day-ahead clearing limits of -500 and +4 000 EUR/MWh, room for them to rise) rejects
the whole answer ("price server answer rejected: price out of range"), and the prices we had
stay. Numbers with exponents (``4.5e1``) are read as JSON means them.
"""

from ..httpget import HttpError, HttpGet
from ..netutil import timed_out
from ..timeutil import Backoff, eu_offset, ticks_diff

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


PRICE_MIN_EUR_MWH = const(-10_000)  # the plausible bound of one market price
PRICE_MAX_EUR_MWH = const(40_000)
_FETCH_MS = const(20_000)  # one fetch, all of it, across passes
_SLICE_MS = const(20)  # the fetch's work per loop pass
_TLS_MS = const(1000)  # https on CircuitPython: the handshake (one call) may wait this long
_RETRY_MIN_MS = const(60_000)
_RETRY_MAX_MS = const(3_600_000)
_MAX_ITEMS = const(200)  # 2 days of 15-minute prices = 192
_MAX_BODY = const(65536)
_CARRY_MAX = const(512)  # longest price object
_TOMORROW_FROM_H = const(13)  # local hour from which tomorrow's prices are looked for
_OUT_OF_RANGE = "price out of range"


class Rejected(ValueError):
    """The answer is price data, but not believable: none of it is used."""


def _milli(text):
    """A JSON number (bytes) -> thousandths, rounded half away from zero: ``b"-5.1234"`` ->
    -5123, ``b"4.5e1"`` -> 45000. ValueError if it is not a number, or so large that no price
    can be it (beyond 10**12 thousandths: checked before anything that big is computed)."""
    text = bytes(text).strip()
    neg = text[:1] == b"-"
    if neg or text[:1] == b"+":
        text = text[1:]
    mant, e, exp = text.replace(b"E", b"e").partition(b"e")
    whole, _, frac = mant.partition(b".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or (mant[-1:] == b"."):
        raise ValueError("not a number")
    shift = 3 - len(frac)  # value = digits * 10**shift thousandths
    if e:
        sign = exp[:1]
        digits = exp[1:] if sign in (b"+", b"-") else exp
        if not digits.isdigit():
            raise ValueError("not a number")
        if len(digits) > 4:
            digits = b"9999"  # 1e99999 is as out of range as 1e9999; 1e-99999 is 0
        shift += -int(digits) if sign == b"-" else int(digits)
    digits = (whole + frac).lstrip(b"0")
    if not digits:
        return 0
    if len(digits) > 30:
        raise ValueError("too many digits")
    if len(digits) + shift > 13:
        raise Rejected(_OUT_OF_RANGE)  # never computed: 1e308 would be a 309-digit integer
    if shift >= 0:
        value = int(digits) * 10**shift
    elif len(digits) + shift < 0:
        value = 0  # below half a thousandth
    else:
        div = 10 ** (-shift)
        value = (int(digits) + div // 2) // div
    return -value if neg else value


def _field(seg, key):
    i = seg.find(key)
    if i < 0:
        return None
    i += len(key)
    n = len(seg)
    while i < n and seg[i : i + 1] in (b" ", b":", b"\t", b"\r", b"\n"):
        i += 1
    j = i
    while j < n and seg[j : j + 1] in b"+-0123456789.eE":
        j += 1
    if j == i:
        raise ValueError("no number after " + key.decode())
    return seg[i:j]


def _ms(text):
    """A timestamp in ms (digits only) -> seconds."""
    text = bytes(text)
    if not text.isdigit() or len(text) > 15:
        raise ValueError("bad timestamp")
    return int(text) // 1000


class Scanner:
    """Parses the price answer while it streams in: one ``{...}`` object at a time.

    ``items`` collects ``(start_s, end_s, milli_eur_per_mwh)`` as the answer says them (checked
    by :func:`validate`). Raises ValueError for text that is not price data (no object closes
    within ``_CARRY_MAX`` bytes) or too many items, :class:`Rejected` for a number no price can
    be.
    """

    def __init__(self):
        self.carry = b""
        self.items = []

    def feed(self, chunk):
        data = self.carry + bytes(chunk) if self.carry else bytes(chunk)
        while True:
            i = data.find(b"}")
            if i < 0:
                break
            self._object(data[:i])
            data = data[i + 1 :]
        if len(data) > _CARRY_MAX:
            raise ValueError("the answer is not price data")
        self.carry = data

    def _object(self, seg):
        start = _field(seg, b'"start_timestamp"')
        price = _field(seg, b'"marketprice"')
        if start is None or price is None:
            return  # the closing of the outer object, or an object of something else
        end = _field(seg, b'"end_timestamp"')
        start_s = _ms(start)
        end_s = _ms(end) if end is not None else start_s + 3600
        if len(self.items) >= _MAX_ITEMS:
            raise ValueError("too many prices in the answer")
        self.items.append((start_s, end_s, _milli(price)))


def validate(items, since, until):
    """Check a whole answer before any of it is used (by :func:`quarters` and the tariff).

    :param items: ``(start_s, end_s, milli_eur_per_mwh)`` as :class:`Scanner` read them
    :param since: the first second asked for; ``until``: the end of what was asked (items
        outside are left out, so no quarter number can be absurd)
    :returns: the items inside ``[since, until)``, the same triples, sorted by start
    :raises Rejected: a price outside ``PRICE_MIN_EUR_MWH .. PRICE_MAX_EUR_MWH``, or an item
        that ends before it starts: then nothing of the answer is used
    """
    low = PRICE_MIN_EUR_MWH * 1000
    high = PRICE_MAX_EUR_MWH * 1000
    out = []
    for item in items:
        start, end, price = item
        if not low <= price <= high:
            raise Rejected(_OUT_OF_RANGE)
        if end <= start:
            raise Rejected("interval ends before it starts")
        if start >= since and end <= until:
            out.append(item)
    out.sort()
    return out


def quarters(items):
    """``[(utc_quarter, milli_eur_mwh), ...]`` (quarter = epoch // 900), oldest first: each
    item gives its price to every quarter it covers. Items of 15, 30, 45 or 60 minutes, mixed in
    one answer, on quarter boundaries; other items (not on the quarter grid, longer than an
    hour) are skipped. Where items overlap, the shorter (finer) one wins."""
    got = {}
    for start, end, price in items:
        dur = end - start
        if dur <= 0 or dur > 3600 or start % 900 or dur % 900:
            continue
        q0 = start // 900
        for q in range(q0, end // 900):
            have = got.get(q)
            if have is None or dur < have[1]:
                got[q] = (price, dur)
    out = [(q, v[0]) for q, v in got.items()]
    out.sort()
    return out


NAME = "prices"
PROBLEMS = (
    (
        "prices",
        ("error",),
        {
            "en": ("No day-ahead prices", "Check PRICE_API_URL"),
            "de": ("Keine Boersenpreise", "PRICE_API_URL pruefen"),
        },
    ),
    (
        "prices_rejected",
        ("rejected",),
        {
            "en": ("Price answer rejected", "Check PRICE_API_URL"),
            "de": ("Preisantwort abgelehnt", "PRICE_API_URL pruefen"),
        },
    ),
)


class PriceSink:
    """Fetches day-ahead prices into the shared
    :class:`~smartmeter.datalog.market.MarketTariff` (``PRICE_DYNAMIC``).

    :param config: Config (PRICE_API_URL; the tariff settings are in ``tariff`` already)
    :param pool: socket pool; ``ssl_context`` for https (default: ``ssl.create_default_context()``)
    :param tariff: the MarketTariff the usage summary prices with
    :param clock: ``ticks_ms()`` (the retry schedule) and ``time()`` (UTC epoch or None while
        unset); ``wall_ms()`` if it has one (the simulator: real time for the network)
    :param service: unused (the fetch no longer waits; kept for the app's call)

    Registers ``state.sinks["prices"]`` (state pending | ok | error | rejected, last error,
    ``sent`` = fetches, ``failed`` = failed fetches, ``queued`` = hours with a price); an error
    or a rejected answer is listed among the problems until a fetch succeeds.
    :ivar busy: a fetch is under way  :ivar longest_ms: longest time one poll took (a pass)
    :ivar last_fetch_ms: how long the last fetch took from start to end (across passes)
    """

    name = NAME

    def __init__(self, config, pool, state, tariff, clock, ssl_context=None, service=None):
        self.url = config.PRICE_API_URL
        self.state = state
        self.tariff = tariff
        self.clock = clock
        self.fetch_ms = _FETCH_MS
        self.slice_ms = _SLICE_MS
        self.fetches = 0
        self.failures = 0
        self.last_error = ""
        self.status = state.add_sink(NAME, PROBLEMS)
        self.status.state = "pending"
        self.longest_ms = 0
        self.last_fetch_ms = 0
        self.retry = Backoff(_RETRY_MIN_MS, _RETRY_MAX_MS)
        # the network's time: the simulator's clock may run faster (``wall_ms`` is its real
        # time), a server's answer does not (as the web server's budgets)
        self._wall = getattr(clock, "wall_ms", None) or clock.ticks_ms
        self._get = HttpGet(pool, self._wall, ssl_context)
        self._scanner = None
        self._body = 0
        self._window = (0, 0)
        self._epoch = 0
        self._t0 = 0
        state.prices = self

    @property
    def busy(self):
        return self._get.busy

    def _now(self):
        t = self.clock.time()
        if t is None:
            t = self.state.latest_epoch
        return None if t is None else int(t)

    def due(self, epoch):
        """True when prices are missing that a fetch now could bring."""
        tariff = self.tariff
        if tariff.market(epoch // 900) is None:
            return True
        off = eu_offset(epoch, 60)
        local = epoch + off * 60
        if local % 86400 < _TOMORROW_FROM_H * 3600:
            return False
        tomorrow_noon = (local - local % 86400 + 86400 + 12 * 3600 - off * 60) // 900
        return tariff.market(tomorrow_noon) is None

    def poll(self, now_ms=None):
        """Start a fetch when due, or go on with the one under way: a slice of work at most.
        Never raises; every failure (network, HTTP, an answer rejected or one the tariff cannot
        take) is counted, shown and retried after the backoff."""
        now = self.clock.ticks_ms() if now_ms is None else now_ms
        if not self._get.busy:
            if not self.retry.due(now):
                return
            epoch = self._now()
            if epoch is None or not self.due(epoch):
                return
        t0 = self._wall()
        try:
            if not self._get.busy:
                self._start(epoch)
            if self._get.step(self._feed, self.slice_ms):
                self._finish(now)
        except Exception as exc:  # noqa: BLE001 - any failure: keep what we have, retry later
            self._get.close()
            self._scanner = None
            self._failed(now, exc)
        took = ticks_diff(self._wall(), t0)
        if took > self.longest_ms:
            self.longest_ms = took

    def _start(self, epoch):
        """Open the request for today and tomorrow (local days) of ``epoch``."""
        off = eu_offset(epoch, 60)
        midnight = epoch + off * 60
        midnight = midnight - midnight % 86400 - off * 60
        until = midnight + 2 * 86400 + 3600  # a 25-hour day included
        url = "%s%sstart=%d000&end=%d000" % (
            self.url,
            "&" if "?" in self.url else "?",
            midnight,
            until,
        )
        self._epoch = epoch
        self._window = (midnight, until)
        self._scanner = Scanner()
        self._body = 0
        self._t0 = self._wall()
        self._get.start(url, self.fetch_ms, _TLS_MS)

    def _feed(self, chunk):
        self._body += len(chunk)
        if self._body > _MAX_BODY:
            raise ValueError("price answer too long")
        self._scanner.feed(chunk)

    def _finish(self, now):
        """The whole answer is in: check all of it, then take it."""
        scanner = self._scanner
        self._scanner = None
        self.last_fetch_ms = ticks_diff(self._wall(), self._t0)
        got = quarters(validate(scanner.items, *self._window))
        if not got:
            raise ValueError("no prices in the answer")
        self.tariff.set_market(got)
        self.fetches += 1
        self.last_error = ""
        self._report("ok")
        if self.due(self._epoch):  # the answer lacked hours we need (tomorrow not out yet)
            self.retry.fail(now)
        else:
            self.retry.ok()

    def _failed(self, now, exc):
        self.failures += 1
        self.last_error = _reason(exc)[:80]
        self._report("rejected" if isinstance(exc, Rejected) else "error")
        self.retry.fail(now)

    def _report(self, state):
        st = self.status
        st.state = state
        st.error = self.last_error
        st.sent = self.fetches
        st.failed = self.failures
        st.queued = self.tariff.market_hours()


def _reason(exc):
    if isinstance(exc, Rejected):
        return "price server answer rejected: " + str(exc)
    if isinstance(exc, HttpError):
        return "price server answered " + str(exc)
    if timed_out(exc):
        return "price API timed out"
    return str(exc) or type(exc).__name__
