"""Hostile price servers (issue 18, items 1-4): whoever controls the price server or its
plain-HTTP path must not be able to stall the loop, make the board fetch on every pass, put an
absurd price into the stored costs, or send the board elsewhere with a redirect.

The fake is a raw TCP server (full control over what and when it sends): an aWATTar-like answer
with prices written as the test says (``"99999999999"``, ``"1e308"``), a redirect to a second
server, a server that trickles its answer a byte at a time, and one that accepts and says nothing.
"""

import socket
import threading
import time

import pytest
from test_prices import Cfg
from test_prices import RealClock as Clock
from test_prices import make as make_sink

from smartmeter import app as app_mod
from smartmeter import config
from smartmeter.datalog.market import MarketTariff as Tariff
from smartmeter.datalog.usage import Usage, cost_mct
from smartmeter.outputs import prices as P
from smartmeter.state import State, problem_hint, problem_text
from smartmeter.timeutil import epoch_from_fields

NOW = epoch_from_fields((2024, 10, 26, 15, 30, 0))  # 17:30 CEST: tomorrow's prices are due
MIDNIGHT = epoch_from_fields((2024, 10, 25, 22, 0, 0))  # 2024-10-26 00:00 CEST
TOMORROW = MIDNIGHT + 86400
REJECTED = "price server answer rejected: price out of range"


def good(hour):
    return b"%d.%02d" % (40 + hour % 50, hour % 100)


def body_for(start_ms, end_ms, price):
    items = []
    for t in range(start_ms, end_ms, 3_600_000):
        items.append(
            b'{"start_timestamp":%d,"end_timestamp":%d,"marketprice":%s,"unit":"Eur/MWh"}'
            % (t, t + 3_600_000, price(t // 3_600_000))
        )
    return b'{"object":"list","data":[' + b",".join(items) + b"]}"


class PriceServer:
    """A loopback server that answers each GET as ``mode`` says.

    modes: ``ok`` (Content-Length), ``redirect`` (302 to ``location``), ``trickle`` (status line
    and the answer one byte every ``gap`` s), ``silent`` (accepts, never sends), ``eof`` (no
    Content-Length, ends by closing).
    """

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d/v1/marketdata" % self.port
        self.mode = "ok"
        self.price = good
        self.until = None  # last ms of the answer (None: what was asked)
        self.location = None
        self.gap = 0.02
        self.tls = None  # an ssl.SSLContext: answer over TLS
        self.requests = []
        self.stop = threading.Event()
        self.held = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.lsock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        self.held.append(conn)
        try:
            conn.settimeout(5)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                self.held.append(conn)
            data = b""
            while b"\r\n\r\n" not in data:
                got = conn.recv(1024)
                if not got:
                    return
                data += got
            line = data.split(b"\r\n", 1)[0].decode()
            path = line.split(" ")[1]
            self.requests.append(path)
            mode = self.mode
            if mode == "silent":
                self.stop.wait(30)
                return
            if mode == "late":  # answers after 1 s
                self.stop.wait(1.0)
            if mode == "redirect":
                conn.sendall(
                    b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n"
                    % self.location.encode()
                )
                return
            q = dict(p.split("=") for p in path.split("?", 1)[1].split("&"))
            end = int(q["end"]) if self.until is None else min(int(q["end"]), self.until)
            body = body_for(int(q["start"]), end, self.price)
            if mode == "eof":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
                return
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            if mode == "trickle":
                for i in range(len(answer)):
                    if self.stop.is_set():
                        return
                    conn.sendall(answer[i : i + 1])
                    time.sleep(self.gap)
                return
            conn.sendall(answer)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        for conn in self.held:
            try:
                conn.close()
            except OSError:
                pass
        self.lsock.close()


@pytest.fixture
def srv():
    s = PriceServer()
    yield s
    s.close()


def make(srv, epoch=NOW, price_mct=0):
    """A price sink fetching from ``srv``, as test_prices makes one: -> sink, tariff, state."""
    return make_sink(srv, price_mct, epoch)[:3]


def run(sink, seconds=10.0):
    """Poll (as the loop does, every few ms) until the fetch is over; -> longest poll in s."""
    longest = 0.0
    end = time.monotonic() + seconds
    first = True
    while time.monotonic() < end:
        t0 = time.monotonic()
        sink.poll()
        longest = max(longest, time.monotonic() - t0)
        if not first and not getattr(sink, "busy", False):
            break
        first = False
        time.sleep(0.002)
    return longest


# -- item 1: a price beyond int32 --------------------------------------------------------------
def test_a_price_beyond_int32_is_rejected_and_backs_off(srv):
    srv.price = lambda h: b"99999999999" if h % 24 == 5 else good(h)
    sink, tariff, state = make(srv)
    for _ in range(5):
        run(sink)
    assert len(srv.requests) == 1  # one fetch, then the backoff: not one per pass
    assert sink.retry.delay == 60_000 and not sink.retry.due(Clock(0).ticks_ms())
    status = state.sinks["prices"]
    assert status.state == "rejected" and status.error == REJECTED and status.failed == 1
    assert tariff.market_hours() == 0  # nothing of the answer was taken


def test_any_failure_while_taking_an_answer_backs_off(srv, monkeypatch):
    sink, tariff, state = make(srv)

    def broken(hours):
        raise OverflowError("value would overflow a 4 byte buffer")

    monkeypatch.setattr(tariff, "set_market", broken)
    for _ in range(5):
        run(sink)  # never raises
    assert len(srv.requests) == 1 and sink.retry.delay == 60_000
    assert state.sinks["prices"].state == "error" and "overflow" in sink.last_error
    assert state.sinks["prices"].failed == 1 and "prices" in state.problems()


def test_the_loop_fetches_a_hostile_answer_once(srv):
    """The real loop for 2 s against the int32 answer: one fetch (was: one per pass)."""
    srv.price = lambda h: b"99999999999"
    app, _ = loop_app(srv)
    end = time.monotonic() + 2.0
    slowest = 0.0
    while time.monotonic() < end:
        t0 = time.monotonic()
        app.loop_once()
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(0.005)
    assert len(srv.requests) == 1
    assert app.state.counters.sink_errors == 0  # handled inside the part, not by the isolation
    assert app.state.sinks["prices"].error == REJECTED
    assert slowest < 0.5


# -- item 2: absurd but finite prices ----------------------------------------------------------
def test_an_absurd_price_is_rejected_and_the_costs_keep_the_prices_we_have(srv):
    srv.until = TOMORROW * 1000  # today only: tomorrow is still wanted afterwards
    sink, tariff, state = make(srv)
    run(sink)
    assert state.sinks["prices"].state == "ok" and tariff.market_hours() == 24
    hour = MIDNIGHT // 3600 + 7
    before = [tariff.dynamic(MIDNIGHT // 3600 + k) for k in range(24)]
    # the next answer has tomorrow, and one absurd hour: 1 000 000 EUR/MWh
    srv.until = None
    srv.price = lambda h: b"1000000" if h == hour + 24 else good(h)
    sink.retry.next = None
    run(sink)
    assert len(srv.requests) == 2
    assert state.sinks["prices"].state == "rejected" and sink.last_error == REJECTED
    assert [tariff.dynamic(MIDNIGHT // 3600 + k) for k in range(24)] == before
    assert tariff.dynamic(hour + 24) is None and tariff.market_hours() == 24
    assert "prices_rejected" in state.problems()
    assert problem_text("prices_rejected", "en") == "Price answer rejected"
    assert problem_text("prices_rejected", "de") == "Preisantwort abgelehnt"
    assert problem_hint("prices_rejected", "de") == "PRICE_API_URL pruefen"
    # an hour of use is costed with the price we had, not with a rejected one
    u = Usage(tariff)
    for k in range(13):  # a telegram every 5 min; the last one closes the hour
        u.add(hour * 3600 + 300 * k, 1_000_000 + 100 * k, 0)
    imp, _, cost = u.period(u.hours, hour)[:3]
    assert imp == 1100 and cost == cost_mct(1100, before[7])  # the good price


@pytest.mark.parametrize("text", [b"1e308", b"4.1E4", b"-1.1e4", b"40000.001"])
def test_a_price_outside_the_bound_is_rejected_whatever_its_notation(srv, text):
    srv.price = lambda h: text if h % 24 == 20 else good(h)
    sink, tariff, state = make(srv)
    run(sink)
    assert sink.last_error == REJECTED and tariff.market_hours() == 0


def test_the_bound_itself_and_exponents_are_taken(srv):
    prices = {0: b"40000", 1: b"-10000", 2: b"4.5e1", 3: b"-2.5E+2", 4: b"1234E-2", 5: b"0e5"}
    srv.price = lambda h: prices.get(h % 24, good(h))
    sink, tariff, state = make(srv)
    run(sink)
    assert state.sinks["prices"].state == "ok", sink.last_error
    base = MIDNIGHT // 3600 - MIDNIGHT // 3600 % 24 + 24  # the first hour of UTC day after
    got = {h % 24: tariff.dynamic(h) for h in range(base, base + 6)}
    # gross mct/kWh = (EUR/MWh * 100 + 1500) * 1.2
    want = {0: 4_801_800, 1: -1_198_200, 2: 7200, 3: -28_200, 4: 3281, 5: 1800}
    assert got == want


def test_milli_reads_json_numbers():
    assert P._milli(b"-5.1234") == -5123
    assert P._milli(b"4.5e1") == 45_000
    assert P._milli(b"-1.5E-1") == -150
    assert P._milli(b"12e+0") == 12_000
    assert P._milli(b"1e-9") == 0
    for bad in (b"1e", b"e5", b"1.2.3", b"--1", b"1e5.5", b"", b"."):
        with pytest.raises(ValueError):
            P._milli(bad)
    with pytest.raises(ValueError):
        P._milli(b"1e308")  # far out of range: never computed as a 309-digit number
    with pytest.raises(ValueError):
        P._milli(b"9" * 400)


# -- item 3: trickling and silent servers ------------------------------------------------------
@pytest.mark.parametrize("mode", ["trickle", "silent"])
def test_a_trickling_or_silent_server_never_holds_a_pass(srv, mode):
    srv.mode = mode
    sink, tariff, state = make(srv, price_mct=25_000)
    sink.fetch_ms = 1500  # the whole fetch may take this long (across passes)
    t0 = time.monotonic()
    longest = run(sink)
    took = time.monotonic() - t0
    assert longest < 0.1, longest  # each pass: a slice of a few ms
    assert sink.longest_ms < 100
    assert 1.4 <= took < 3.0  # the fetch as a whole still ends at its deadline
    assert state.sinks["prices"].state == "error" and "timed out" in sink.last_error
    assert len(srv.requests) == 1 and sink.retry.delay == 60_000
    assert tariff.import_price(NOW // 3600) == (25_000, False)


def test_a_slow_but_steady_server_is_read_across_passes(srv):
    srv.mode = "trickle"
    srv.gap = 0.0005
    sink, tariff, state = make(srv)
    longest = run(sink, 30)
    assert state.sinks["prices"].state == "ok", sink.last_error
    assert tariff.market_hours() == 49 and longest < 0.1


def test_an_answer_that_ends_with_the_connection_is_taken(srv):
    srv.mode = "eof"
    sink, tariff, state = make(srv)
    run(sink)
    assert state.sinks["prices"].state == "ok", sink.last_error
    assert tariff.market_hours() == 49


class FastClock(Clock):
    """The simulator's clock at --speed 60: ticks run 60 times faster, ``wall_ms`` is real."""

    def ticks_ms(self):
        return int(time.monotonic() * 60_000) & ((1 << 29) - 1)

    def wall_ms(self):
        return int(time.monotonic() * 1000) & ((1 << 29) - 1)


def test_the_fetch_deadline_is_network_time_whatever_the_simulator_speed(srv):
    """``python -m sim --speed 60``: the server's second is a real second. The fetch's deadline
    and slices follow ``wall_ms`` (as the web server's budgets do), the retry schedule the
    app's ticks; a server that answers after 1 s is still read (it timed out after 20/60 s)."""
    srv.mode = "late"
    tariff = Tariff(markup_mct=1500, vat_mpct=20_000)
    state = State()
    sink = P.PriceSink(Cfg(srv.url), socket, state, tariff, FastClock(NOW))
    longest = run(sink)
    assert state.sinks["prices"].state == "ok", sink.last_error
    assert tariff.market_hours() == 49 and longest < 0.1
    assert 1000 <= sink.last_fetch_ms < 3000  # real milliseconds


def loop_app(srv):
    from sim.hardware import Console, Hardware, SimRadio, SimUart

    cfg = config.load(
        lambda _n: None,
        {
            "METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB",
            "PRICE_DYNAMIC": "true",
            "PRICE_API_URL": srv.url,
            "PRICE_CT_KWH": "20",
            "CIRCUITPY_WIFI_SSID": "home",
        },
    )
    uart = SimUart(buffer_size=8192)
    hw = Hardware(
        uart=uart, pool=socket, radio=SimRadio(), clock=Clock(NOW), console=Console(out=None)
    )
    return app_mod.build(hw, cfg, web=False), uart


@pytest.mark.parametrize("mode", ["trickle", "silent"])
def test_the_loop_stays_fast_while_the_price_server_stalls(srv, mode):
    from sim.meter import VirtualMeter

    srv.mode = mode
    app, uart = loop_app(srv)
    app.state.prices.fetch_ms = 1500
    meter = VirtualMeter("netznoe", bytes.fromhex("36C66639E48A8CA4D6BC8B282A793BBB"), None, seed=2)
    slowest = 0.0
    end = time.monotonic() + 2.0
    k = 0
    while time.monotonic() < end:
        if k % 20 == 0:
            uart.push(meter.telegram(NOW + k))
        t0 = time.monotonic()
        app.loop_once()
        slowest = max(slowest, time.monotonic() - t0)
        k += 1
        time.sleep(0.005)
    sink = app.state.prices
    assert slowest < 0.25, slowest  # was the fetch budget, 3.5 s
    assert sink.failures == 1 and "timed out" in sink.last_error
    assert app.state.counters.decoded == (k + 19) // 20


# -- item 4: redirects -------------------------------------------------------------------------
def test_a_redirect_is_not_followed(srv):
    other = PriceServer()
    try:
        srv.mode = "redirect"
        srv.location = other.url + "?start=0&end=3600000"
        sink, tariff, state = make(srv)
        run(sink)
        time.sleep(0.1)
        assert len(srv.requests) == 1 and other.requests == []
        assert state.sinks["prices"].state == "error"
        assert "HTTP 302" in sink.last_error and "redirect" in sink.last_error
        assert tariff.market_hours() == 0 and sink.retry.delay == 60_000
    finally:
        other.close()


# -- item 3 over https -------------------------------------------------------------------------
class Relay:
    """A TCP relay in front of ``port``: what the client sends goes on at once, what the server
    sends comes back one byte every ``gap`` s (a path that trickles the TLS handshake)."""

    def __init__(self, port, gap):
        self.target = port
        self.gap = gap
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.stop = threading.Event()
        self.socks = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.lsock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                client, _ = self.lsock.accept()
            except OSError:
                continue
            server = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, 0), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(server, client, self.gap), daemon=True
            ).start()

    def _pipe(self, src, dst, gap):
        try:
            while not self.stop.is_set():
                data = src.recv(4096)
                if not data:
                    return
                if not gap:
                    dst.sendall(data)
                    continue
                for i in range(len(data)):
                    if self.stop.is_set():
                        return
                    dst.sendall(data[i : i + 1])
                    time.sleep(gap)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.lsock.close()


class CircuitPythonTls:
    """TLS as CircuitPython 10 does it (shared-module/ssl/SSLSocket.c), over ``ssl.MemoryBIO``:
    ``wrap_socket(sock, server_side=False, server_hostname=None)`` takes any object with the
    socket methods and calls them by name; ``connect()`` runs the whole handshake in one call
    (EAGAIN from the socket: wait 1 ms and go on; any other error ends it); afterwards
    ``recv_into``/``send`` raise EAGAIN while the record is not complete."""

    def __init__(self, context):
        self.context = context

    def wrap_socket(self, sock, server_side=False, server_hostname=None):
        for name in ("accept", "bind", "close", "connect", "listen", "recv_into", "send",
                     "settimeout", "setsockopt"):  # fmt: skip
            getattr(sock, name)  # mp_load_method: AttributeError if one is missing
        assert sock.type == 1
        return _CpSslSocket(self.context, sock, server_hostname)


class _CpSslSocket:
    def __init__(self, context, sock, host):
        import ssl

        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.inc, self.out, server_hostname=host)
        self.buf = bytearray(2048)

    def _flush(self):
        data = self.out.read()
        while data:
            try:
                n = self.sock.send(data)
            except OSError as exc:
                if exc.errno != 11:
                    raise
                time.sleep(0.001)
                continue
            data = data[n:]

    def _pull(self):
        n = self.sock.recv_into(self.buf, len(self.buf))  # EAGAIN and errors go to the caller
        if n == 0:
            raise OSError(128, "ENOTCONN")
        self.inc.write(bytes(self.buf[:n]))

    def connect(self, addr):
        import ssl

        self.sock.connect(addr)
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
            try:
                self._pull()
            except OSError as exc:
                if exc.errno != 11:
                    raise OSError(exc.errno, "handshake failed") from None
                time.sleep(0.001)  # mp_hal_delay_ms(1), then the handshake goes on

    def send(self, data):
        n = self.obj.write(bytes(data))
        self._flush()
        return n

    def recv_into(self, buf, nbytes=0):
        import ssl

        n = nbytes or len(buf)
        while True:
            try:
                data = self.obj.read(n)
                buf[: len(data)] = data
                return len(data)
            except ssl.SSLWantReadError:
                self._pull()  # EAGAIN: raised, as CircuitPython does
            except ssl.SSLZeroReturnError:
                return 0

    def settimeout(self, timeout):
        self.sock.settimeout(timeout)

    def close(self):
        self.sock.close()


def tls_sink(srv, tmp_path, port, cp=False, fetch_ms=1500):
    import ssl

    from mosquitto import make_test_cert

    certfile, keyfile = make_test_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certfile, keyfile)
    srv.tls = server_ctx
    client = ssl.create_default_context(cafile=str(certfile))
    tariff = Tariff(markup_mct=1500, vat_mpct=20_000)
    state = State()
    url = "https://127.0.0.1:%d/v1/marketdata" % (port or srv.port)
    ctx = CircuitPythonTls(client) if cp else client
    sink = P.PriceSink(Cfg(url), socket, state, tariff, Clock(NOW), ctx)
    sink.fetch_ms = fetch_ms
    return sink, tariff, state


@pytest.mark.parametrize("cp", [False, True], ids=["cpython-tls", "circuitpython-tls"])
def test_https_is_read_across_passes(srv, tmp_path, cp):
    sink, tariff, state = tls_sink(srv, tmp_path, None, cp, fetch_ms=10_000)
    longest = run(sink)
    assert state.sinks["prices"].state == "ok", sink.last_error
    assert tariff.market_hours() == 49
    assert longest < (1.0 if cp else 0.1)  # CircuitPython: the handshake is one call


@pytest.mark.parametrize("cp", [False, True], ids=["cpython-tls", "circuitpython-tls"])
@pytest.mark.parametrize("mode", ["trickle", "silent"])
def test_a_trickling_or_silent_tls_handshake_never_holds_a_pass(srv, tmp_path, mode, cp):
    """The default price API is https: a server (or path) that trickles its TLS handshake or
    never answers the ClientHello must not hold a pass either (it held it 0.5 s per byte)."""
    relay = None
    if mode == "trickle":
        relay = Relay(srv.port, 0.005)  # the server's certificate, a byte every 5 ms
    else:
        srv.mode = "silent"
    try:
        sink, tariff, state = tls_sink(srv, tmp_path, relay.port if relay else None, cp)
        if mode == "silent":
            srv.tls = None  # accepts the connection, never answers the ClientHello
        t0 = time.monotonic()
        longest = run(sink)
        took = time.monotonic() - t0
    finally:
        if relay is not None:
            relay.close()
    assert state.sinks["prices"].state == "error" and "timed out" in sink.last_error
    # CPython's TLS pauses: every pass is a slice. CircuitPython's handshake is one call,
    # which stops waiting for the server after _TLS_MS (1 s).
    assert longest < (P._TLS_MS / 1000 + 0.3 if cp else 0.1), longest
    assert took < 3.0 and tariff.market_hours() == 0


def test_prices_at_the_bound_never_overflow_the_stored_costs():
    """An answer inside the bound, +40 000 EUR/MWh for every quarter, and a heavy load (20 kW
    for a day: 480 kWh) make a day's cost beyond int32 milli-cent (21 474 EUR). The summary
    must go on booking energy (the cost held at the limit), not raise on every telegram."""
    first_q = MIDNIGHT // 900
    tariff = Tariff(markup_mct=1500, vat_mpct=20_000)
    tariff.set_market([(q, P.PRICE_MAX_EUR_MWH * 1000) for q in range(first_q, first_q + 196)])
    u = Usage(tariff)
    a = 1_000_000
    for k in range(24 * 60 + 2):  # a telegram a minute, 333 Wh each
        u.add(MIDNIGHT + 60 * k, a, 0)
        a += 333
    day = u.day_key(MIDNIGHT + 3600)
    imp, _, cost = u.period(u.days, day)[:3]
    assert imp == 333 * (24 * 60 - 1)  # every Wh of the day booked
    assert cost == 0x7FFFFFFF  # held at the int32 limit
    month = u.period(u.months, u.months.newest_key())
    assert month[0] >= imp and month[2] >= 0x7FFFFFFF  # stored at the limit (+ the open quarter)
