# SPDX-License-Identifier: MIT
"""Day-ahead prices per quarter hour from a price API (aWATTar's market data by default).

``PRICE_DYNAMIC = true`` and ``PRICE_API_URL`` (default ``https://api.awattar.at/v1/marketdata``)
turn it on. The answer is aWATTar's JSON: ``{"object":"list","data":[{"start_timestamp": ms,
"end_timestamp": ms, "marketprice": EUR/MWh, "unit":"Eur/MWh"}, ...]}``; items of 15, 30, 45 or
60 minutes (mixed in one answer: the market clears in quarters since 2025-10-01, older or other
sources answer in hours) give their price to each UTC quarter hour they cover (``quarters()``);
a quarter no item covers has no price. The gross price per kWh is ``(marketprice / 10 +
PRICE_MARKUP_CT_KWH) * (1 + PRICE_VAT_PERCENT / 100)`` ct (``usage.Tariff``), each quarter its
own; quarters without one are costed at the fixed ``PRICE_CT_KWH`` (or not at all when that is
0). No network never breaks anything.

When: at start (once the clock is set), whenever the current hour has no price, and after 13:00
local time until tomorrow's prices are in (they are published around 13:00-14:00). A failed or
incomplete fetch is retried after 1 min, doubling to 1 h. So on a normal day: one fetch.

Never blocks the loop for long: the whole fetch - connect, TLS, request, headers, body - runs
against one deadline of ``_BUDGET_MS`` (3.5 s, what the MQTT output may take for a TLS connect)
enforced by our code: every socket the HTTP library gets comes through
:class:`smartmeter.httpio.DeadlinePool`, whose sockets cap each wait at what is left and wait for
data in 0.2 s steps, running the UART pump (``service``) between steps and every 100 ms while data
trickles in. Only DNS
(``getaddrinfo``) is outside it. The answer is parsed while it streams in (one object at a
time, at most ``_MAX_ITEMS``), never held whole in RAM.
"""

from .. import httpio
from ..netutil import timed_out
from ..timeutil import Backoff, eu_offset, ticks_diff

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_BUDGET_MS = const(3500)  # one fetch, all of it
_RETRY_MIN_MS = const(60_000)
_RETRY_MAX_MS = const(3_600_000)
_MAX_ITEMS = const(200)  # 2 days of 15-minute prices = 192
_MAX_BODY = const(65536)
_CARRY_MAX = const(512)  # longest price object
_TOMORROW_FROM_H = const(13)  # local hour from which tomorrow's prices are looked for


def _milli(text):
    """Decimal bytes -> thousandths (rounded), e.g. b"-5.1234" -> -5123. ValueError if bad."""
    text = bytes(text).strip()
    neg = text[:1] == b"-"
    if neg or text[:1] == b"+":
        text = text[1:]
    whole, _, frac = text.partition(b".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError("not a number")
    frac = frac + b"0000"
    value = int(whole) * 1000 + int(frac[:3]) + (1 if frac[3:4] >= b"5" else 0)
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
    while j < n and seg[j : j + 1] in b"+-0123456789.":
        j += 1
    if j == i:
        raise ValueError("no number after " + key.decode())
    return seg[i:j]


class Scanner:
    """Parses the price answer while it streams in: one ``{...}`` object at a time.

    ``items`` collects ``(start_s, end_s, milli_eur_per_mwh)``. Raises ValueError for text that
    is not price data (no object closes within ``_CARRY_MAX`` bytes) or too many items.
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
        start_s = int(start) // 1000
        end_s = int(end) // 1000 if end is not None else start_s + 3600
        if len(self.items) >= _MAX_ITEMS:
            raise ValueError("too many prices in the answer")
        self.items.append((start_s, end_s, _milli(price)))


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
)


class PriceSink:
    """Fetches day-ahead prices into the shared :class:`~smartmeter.datalog.usage.Tariff`.

    :param config: Config (PRICE_API_URL; the tariff settings are in ``tariff`` already)
    :param pool: socket pool; ``ssl_context`` for https (default: ``ssl.create_default_context()``)
    :param tariff: the Tariff the usage summary prices with
    :param clock: ``ticks_ms()`` and ``time()`` (UTC epoch or None while unset)
    :param service: called between waits for data (``App.service_uart``)

    Registers ``state.sinks["prices"]`` (state pending | ok | error, last error, ``sent`` =
    fetches, ``failed`` = failed fetches, ``queued`` = hours with a price); an error is listed
    among the problems until a fetch succeeds.
    """

    name = NAME

    def __init__(self, config, pool, state, tariff, clock, ssl_context=None, service=None):
        self.url = config.PRICE_API_URL
        self.state = state
        self.tariff = tariff
        self.clock = clock
        self.ssl_context = ssl_context
        self.budget_ms = _BUDGET_MS
        self.fetches = 0
        self.failures = 0
        self.last_error = ""
        self.status = state.add_sink(NAME, PROBLEMS)
        self.status.state = "pending"
        self.longest_ms = 0  # longest fetch (the loop pause it caused)
        self.retry = Backoff(_RETRY_MIN_MS, _RETRY_MAX_MS)
        self._deadline = httpio.Deadline(clock.ticks_ms, service)
        self._pool = pool
        self._session = None
        state.prices = self

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
        """Fetch when due and the retry time has come; never raises, never blocks long."""
        now = self.clock.ticks_ms() if now_ms is None else now_ms
        if not self.retry.due(now):
            return
        epoch = self._now()
        if epoch is None or not self.due(epoch):
            return
        t0 = self.clock.ticks_ms()
        try:
            got = self.fetch(epoch)
        except Exception as exc:  # noqa: BLE001 - any failure: keep what we have, retry later
            got = None
            self.failures += 1
            self.last_error = _reason(exc)[:80]
            self._report("error")
        took = ticks_diff(self.clock.ticks_ms(), t0)
        if took > self.longest_ms:
            self.longest_ms = took
        if got is not None:
            self.fetches += 1
            self.tariff.set_market(got)
            self.last_error = ""
            self._report("ok")
        if self.due(epoch):  # failed, or the answer lacked hours we need (tomorrow not out yet)
            self.retry.fail(now)
        else:
            self.retry.ok()

    def _report(self, state):
        st = self.status
        st.state = state
        st.error = self.last_error
        st.sent = self.fetches
        st.failed = self.failures
        st.queued = self.tariff.market_hours()

    def fetch(self, epoch):
        """One bounded fetch of today's and tomorrow's prices -> ``quarters()`` list.

        :raises OSError: network failure or the deadline; ValueError: not price data / HTTP error
        """
        off = eu_offset(epoch, 60)
        midnight = epoch + off * 60
        midnight = midnight - midnight % 86400 - off * 60
        url = "%s%sstart=%d000&end=%d000" % (
            self.url,
            "&" if "?" in self.url else "?",
            midnight,
            midnight + 2 * 86400 + 3600,  # a 25-hour day included
        )
        self._deadline.arm(self.budget_ms)
        session = self._session
        if session is None:
            session = httpio.session(self._pool, self._deadline, self.url, self.ssl_context)
            self._session = session
        response = session.get(
            url, headers={"Connection": "close"}, timeout=self.budget_ms / 1000, stream=True
        )
        try:
            if response.status_code != 200:
                raise ValueError("price API answered HTTP %d" % response.status_code)
            scanner = Scanner()
            total = 0
            for chunk in response.iter_content(512):
                total += len(chunk)
                if total > _MAX_BODY:
                    raise ValueError("price answer too long")
                scanner.feed(chunk)
                self._deadline.left_s()
        finally:
            httpio.close(session, response)
        got = quarters(scanner.items)
        if not got:
            raise ValueError("no prices in the answer")
        return got


def _reason(exc):
    if timed_out(exc):
        return "price API timed out"
    text = str(exc) or type(exc).__name__
    return text
