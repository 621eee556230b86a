"""Day-ahead prices (smartmeter/outputs/prices.py) against a local fake of the price API.

Real HTTP on loopback through the real ``adafruit_requests``: the fake answers like aWATTar's
``/v1/marketdata`` (``data[].start_timestamp/end_timestamp`` in ms, ``marketprice`` in EUR/MWh),
or slowly, with a 500, with garbage, or without tomorrow. The cost of a day priced with those
hours must be right to the cent, and no fetch may hold the loop: it runs across passes, a slice
of a few ms each (``fetch`` below polls as the loop does).
"""

import json
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from smartmeter import app as app_mod
from smartmeter import config
from smartmeter.datalog.market import MarketTariff as Tariff
from smartmeter.datalog.usage import Usage
from smartmeter.outputs import prices as P
from smartmeter.state import State, problem_text
from smartmeter.timeutil import epoch_from_fields

NOW = epoch_from_fields((2024, 10, 26, 15, 30, 0))  # 17:30 CEST: tomorrow's prices are due
MIDNIGHT = epoch_from_fields((2024, 10, 25, 22, 0, 0))  # 2024-10-26 00:00 CEST
MARKUP = "1.5"  # ct/kWh net
VAT = "20"


def market(hour):
    """The fake's price of UTC ``hour`` in EUR/MWh: some negative, some with 2 decimals."""
    return round(-12.34 + (hour * 37) % 190 + (hour % 7) * 0.01, 2)


class FakeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        srv = self.server
        srv.requests.append(self.path)
        q = parse_qs(urlparse(self.path).query)
        start, end = int(q["start"][0]), int(q["end"][0])
        mode = srv.mode
        if mode == "500":
            self._send(500, b"internal error")
            return
        if mode == "garbage":
            self._send(200, b"<html><body>" + b"maintenance " * 200 + b"</body></html>")
            return
        if mode == "missing_day":
            end = min(end, (MIDNIGHT + 86400) * 1000)  # tomorrow not published yet
        step = 900_000 if mode == "quarter" else 3_600_000
        data = []
        for t in range(start, end, step):
            price = market(t // 3_600_000)
            data.append(
                {
                    "start_timestamp": t,
                    "end_timestamp": t + step,
                    "marketprice": price,
                    "unit": "Eur/MWh",
                }
            )
        body = json.dumps({"object": "list", "data": data}).encode()
        if mode == "late":  # slow to answer, but within the deadline
            time.sleep(1.0)
        if mode == "slow":  # trickles: the whole answer would take minutes
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(0, len(body), 16):
                    self.wfile.write(body[i : i + 16])
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            return
        self._send(200, body)

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    srv.daemon_threads = True
    srv.mode = "ok"
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = "http://127.0.0.1:%d/v1/marketdata" % srv.server_port
    yield srv
    srv.shutdown()
    srv.server_close()


class RealClock:
    """Real milliseconds (the deadline is wall time), a settable UTC epoch."""

    def __init__(self, epoch):
        self.epoch = epoch

    def ticks_ms(self):
        return int(time.monotonic() * 1000) & ((1 << 29) - 1)

    def time(self):
        return self.epoch


class Cfg:
    def __init__(self, url):
        self.PRICE_API_URL = url


def make(api, price_mct=0, epoch=NOW):
    import socket

    tariff = Tariff(price_mct=price_mct, markup_mct=1500, vat_mpct=20_000)
    state = State()
    services = []
    sink = P.PriceSink(
        Cfg(api.url), socket, state, tariff, RealClock(epoch), None, lambda: services.append(1)
    )
    return sink, tariff, state, services


def fetch(sink, seconds=10.0):
    """Poll as the loop does (every few ms) until the fetch is over; -> the longest poll (s)."""
    end = time.monotonic() + seconds
    longest = 0.0
    while True:
        t0 = time.monotonic()
        sink.poll()
        longest = max(longest, time.monotonic() - t0)
        if not sink.busy or time.monotonic() > end:
            return longest
        time.sleep(0.002)


def gross_ct(hour):
    """The bill's price of UTC ``hour`` in ct/kWh, exactly: (EUR/MWh / 10 + markup) * 1.2."""
    net = Fraction(str(market(hour))) / 10 + Fraction(MARKUP)
    return net * (1 + Fraction(VAT) / 100)


def test_prices_for_today_and_tomorrow_and_the_cost_to_the_cent(api):
    sink, tariff, state, _ = make(api)
    fetch(sink)
    assert sink.status.state == "ok" and sink.fetches == 1, sink.last_error
    assert tariff.market_hours() == 49  # today and tomorrow (25 h: summer time ends)
    q = parse_qs(urlparse(api.requests[0]).query)
    assert int(q["start"][0]) == MIDNIGHT * 1000  # from local midnight
    assert not sink.due(NOW)  # tomorrow is in: no further fetch today
    fetch(sink)
    assert len(api.requests) == 1
    # a day of use, a different amount every hour, priced quarter by quarter
    u = Usage(tariff)
    a = 5_000_000
    energy = {}  # per quarter
    for t in range(MIDNIGHT + 86400, MIDNIGHT + 2 * 86400 + 3600, 30):
        wh = 1 + (t // 3600) % 5  # 120..600 Wh per hour
        a += wh
        u.add(t, a, 0)
        if t > MIDNIGHT + 86400:
            energy[t // 900] = energy.get(t // 900, 0) + wh
    u.add(MIDNIGHT + 2 * 86400 + 3600 + 30, a, 0)  # closes the last quarter
    day = u.day_key(MIDNIGHT + 86400 + 7200)
    got = u.period(u.days, day)
    mine = [q for q in energy if u.day_key(q * 900) == day]
    assert len(mine) == 100  # the 25-hour day: 100 quarters
    exact = sum(Fraction(energy[q], 1000) * gross_ct(q // 4) for q in mine)  # ct
    # the bill: each quarter's energy x its price, rounded to the milli-cent, summed
    billed = sum(round(Fraction(energy[q], 1000) * gross_ct(q // 4) * 1000) for q in mine)
    assert got[0] == sum(energy[q] for q in mine)
    assert got[2] == billed  # to the milli-cent
    assert abs(Fraction(got[2], 1000) - exact) <= Fraction(len(mine), 2000)  # <= 0.5 mct each
    assert abs(Fraction(got[2], 1000) - exact) < Fraction(1, 10)  # a tenth of a cent a day
    assert got[4] & 4  # DYNAMIC


def test_quarter_hour_prices_are_averaged_into_hours(api):
    api.mode = "quarter"
    sink, tariff, _, _ = make(api)
    fetch(sink)
    assert sink.status.state == "ok" and tariff.market_hours() == 49
    hour = MIDNIGHT // 3600 + 5
    assert tariff.dynamic(hour) == round(gross_ct(hour) * 1000)


@pytest.mark.parametrize(
    "mode,why",
    [("500", "HTTP 500"), ("garbage", "not price data"), ("slow", "timed out")],
)
def test_a_broken_price_api_keeps_what_we_have_and_retries(api, mode, why):
    sink, tariff, state, services = make(api, price_mct=25_000)
    sink.fetch_ms = 1500  # the whole fetch, across passes
    api.mode = mode
    t0 = time.monotonic()
    longest = fetch(sink)
    took = time.monotonic() - t0
    assert sink.status.state == "error" and why in sink.last_error, sink.last_error
    status = state.sinks["prices"]  # the output status contract: every surface shows it
    assert status.error == sink.last_error and status.failed == 1
    assert "prices" in state.problems()
    assert problem_text("prices", "de") == "Keine Boersenpreise"
    assert took < 1.5 + 0.5  # the deadline holds, whatever the server does
    assert longest < 0.1 and sink.longest_ms < 100  # and no pass waits for the server
    if mode == "slow":
        assert took >= 1.5 - 0.2  # it did wait, up to the deadline, across passes
    # energy and the fixed tariff go on
    assert tariff.market_hours() == 0 and tariff.import_price(NOW // 3600) == (25_000, False)
    # no hammering: the next try waits for the backoff
    fetch(sink)
    assert len(api.requests) == 1
    assert sink.retry.delay == 60_000
    api.mode = "ok"
    sink.retry.next = None  # the minute has passed
    fetch(sink)
    assert sink.status.state == "ok" and tariff.market_hours() == 49 and sink.failures == 1
    assert "prices" not in state.problems() and status.sent == 1 and status.queued == 49


def test_a_late_answer_within_the_deadline_is_taken(api):
    api.mode = "late"
    sink, tariff, _, _ = make(api)
    fetch(sink)
    assert sink.status.state == "ok" and tariff.market_hours() == 49
    assert 1000 <= sink.last_fetch_ms <= 3000 and sink.longest_ms < 100


def test_a_missing_day_keeps_today_and_asks_again_later(api):
    api.mode = "missing_day"
    sink, tariff, _, _ = make(api, price_mct=30_000)
    fetch(sink)
    assert sink.status.state == "ok" and tariff.market_hours() == 24  # today only
    assert sink.due(NOW) and sink.retry.delay == 60_000  # tomorrow still wanted
    tomorrow = (MIDNIGHT + 86400 + 12 * 3600) // 3600
    assert tariff.import_price(tomorrow) == (30_000, False)  # fixed tariff meanwhile
    assert tariff.import_price(NOW // 3600)[1] is True
    api.mode = "ok"
    sink.retry.next = None
    fetch(sink)
    assert tariff.market_hours() == 49 and not sink.due(NOW)


def test_before_1300_today_is_enough(api):
    morning = epoch_from_fields((2024, 10, 26, 8, 0, 0))  # 10:00 CEST
    api.mode = "missing_day"
    sink, tariff, _, _ = make(api, epoch=morning)
    fetch(sink)
    assert tariff.market_hours() == 24 and not sink.due(morning)


def test_no_clock_no_fetch(api):
    sink, tariff, _, _ = make(api, epoch=None)
    fetch(sink)
    assert api.requests == [] and sink.status.state == "pending"


def test_scanner_is_bounded_and_strict():
    s = P.Scanner()
    s.feed(b'{"object":"list","data":[{"start_timestamp":3600000,"end_timestamp":7200000,')
    s.feed(b'"marketprice":-5.1234,"unit":"Eur/MWh"}]}')
    assert s.items == [(3600, 7200, -5123)]
    with pytest.raises(ValueError):
        P.Scanner().feed(b"x" * 600)  # no object closes: not price data
    with pytest.raises(ValueError):
        P.Scanner().feed(b'{"start_timestamp":1,"marketprice":abc}')


def test_the_loop_is_never_held_by_the_fetch(api):
    """The real app loop with PRICE_DYNAMIC against the trickling server: the fetch goes on
    across passes, none of them slow, until its deadline; every telegram is decoded."""
    import socket

    from sim.hardware import Console, Hardware, SimRadio, SimUart
    from sim.meter import VirtualMeter

    api.mode = "slow"
    key = "36C66639E48A8CA4D6BC8B282A793BBB"
    cfg = config.load(
        lambda _n: None,
        {
            "METER_KEY": key,
            "PRICE_DYNAMIC": "true",
            "PRICE_API_URL": api.url,
            "PRICE_CT_KWH": "20",
            "CIRCUITPY_WIFI_SSID": "home",
        },
    )
    clock = RealClock(NOW)
    uart = SimUart(buffer_size=8192)
    hw = Hardware(uart=uart, pool=socket, radio=SimRadio(), clock=clock, console=Console(out=None))
    app = app_mod.build(hw, cfg, web=False)
    meter = VirtualMeter("netznoe", bytes.fromhex(key), None, seed=2)
    sink = app.state.prices
    sink.fetch_ms = 1000
    slowest = 0.0
    for k in range(40):
        if k % 10 == 0:
            uart.push(meter.telegram(NOW + 5 * k))
        t0 = time.monotonic()
        app.loop_once()
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(0.04)
    assert sink.failures == 1 and "timed out" in sink.last_error
    assert slowest < 0.25
    assert app.state.counters.decoded == 4  # every telegram decoded


def test_https(api, tmp_path):
    """The same fetch over TLS (a self-signed certificate the client trusts): connect and
    handshake in one bounded step, then the answer is read across passes as over plain HTTP."""
    import socket
    import ssl

    from mosquitto import make_test_cert

    certfile, keyfile = make_test_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certfile, keyfile)
    api.socket = server_ctx.wrap_socket(api.socket, server_side=True)
    client_ctx = ssl.create_default_context(cafile=str(certfile))
    tariff = Tariff(markup_mct=1500, vat_mpct=20_000)
    url = "https://127.0.0.1:%d/v1/marketdata" % api.server_port
    sink = P.PriceSink(Cfg(url), socket, State(), tariff, RealClock(NOW), client_ctx)
    fetch(sink)
    assert sink.status.state == "ok" and tariff.market_hours() == 49, sink.last_error
    assert tariff.dynamic(NOW // 3600) == round(gross_ct(NOW // 3600) * 1000)
