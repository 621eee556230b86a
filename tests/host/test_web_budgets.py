"""Idle, slow or guessing clients cannot hold the web page or the loop (issue 13, 5 and 8).

The slowloris runs against the whole simulator at ``--speed 1`` (the meter sending in real
time from its own thread); the other tests use the real web server polled by a loop thread.
"""

import base64
import socket
import threading
import time

from servers import free_port
from test_settings_safety import PASSWORD, Web

from sim.hardware import SimClock
from sim.run import Simulation
from smartmeter.timeutil import ticks_diff

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def token(password=PASSWORD):
    return base64.b64encode(("admin:" + password).encode()).decode()


def http(port, path, password=PASSWORD, host=None, source="127.0.0.1", method="GET", body=b""):
    """One request on a fresh connection: (status, seconds)."""
    t0 = time.monotonic()
    s = socket.socket()
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    try:
        head = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host or "127.0.0.1:%d" % port)
        if password is not None:
            head += "Authorization: Basic %s\r\n" % token(password)
        if body:
            head += "Content-Length: %d\r\n" % len(body)
        s.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else None
    return status, time.monotonic() - t0


class Slowloris:
    """``n`` sockets that send a request head a byte at a time and never finish it; a socket
    the server closes is opened again at once (a persistent attacker). They come from
    127.0.0.2: another device on the network than the user's (127.0.0.1)."""

    def __init__(self, port, n=50, every=0.5):
        self.port = port
        self.n = n
        self.every = every
        self.stop = threading.Event()
        self.reconnects = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _open(self):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        return [s, 0]

    def _run(self):
        socks = [self._open() for _ in range(self.n)]
        head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
        while not self.stop.is_set():
            for i, entry in enumerate(socks):
                s, k = entry
                try:
                    s.send(head[k % len(head) : k % len(head) + 1])
                    entry[1] = k + 1
                except OSError as exc:
                    if exc.errno in (11, 115):  # not connected yet / buffer full
                        continue
                    s.close()
                    socks[i] = self._open()
                    self.reconnects += 1
            self.stop.wait(self.every)
        for s, _ in socks:
            s.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)


def test_slowloris_of_50_sockets_leaves_normal_requests_under_a_second(tmp_path):
    values = {
        "METER_KEY": KEY,
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "WEB_PORT": free_port(),
        "WEB_PASSWORD": PASSWORD,
    }
    sim = Simulation(
        values,
        data_dir=str(tmp_path / "sim"),
        clock=SimClock(speed=1),
        display="none",
        quiet=True,
        realtime=True,
    )
    port = sim.config.WEB_PORT
    results = []
    attack = None

    def client():
        time.sleep(1.0)  # the attack is in place
        for _ in range(12):
            results.append(http(port, "/api/now"))
            time.sleep(0.4)

    longest = 0.0
    try:
        attack = Slowloris(port)
        t = threading.Thread(target=client, daemon=True)
        t.start()
        end = time.monotonic() + 8
        while time.monotonic() < end and (t.is_alive() or len(results) < 12):
            t0 = time.monotonic()
            sim.step()
            longest = max(longest, time.monotonic() - t0)
            time.sleep(0.002)
        t.join(5)
        sim.meter_thread.stop()
        for _ in range(10):
            sim.app.loop_once()
    finally:
        if attack is not None:
            attack.close()
        sim.close()
    web = sim.app.web
    worst = max(r[1] for r in results) if results else None
    print(
        "\nslowloris 50 sockets: %d requests, slowest %.0f ms; %d connections accepted, %d evicted,"
        " attacker reconnects %d; longest loop pass %.0f ms, watchdog gap %.0f ms, %s"
        % (
            len(results),
            (worst or 0) * 1000,
            web.accepted,
            web.evicted,
            attack.reconnects,
            longest * 1000,
            sim.hw.watchdog.max_gap_s * 1000,
            sim.summary(),
        )
    )
    assert len(results) == 12 and all(r[0] == 200 for r in results), results
    assert worst < 1.0, results
    assert web.evicted > 0  # the attack was there and was pushed out
    assert sim.lost() == 0 and sim.uart.overflows == 0
    assert longest < 0.5


def test_slow_uploads_cannot_hold_the_transfer_slots(tmp_path):
    w = Web(tmp_path, {})
    port = w.config.WEB_PORT
    try:
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(
            (
                "POST /upload?name=slow.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s"
                "\r\nContent-Length: 1000000\r\n\r\n" % token()
            ).encode()
        )
        end = time.monotonic() + 3
        while not w.web.jobs and time.monotonic() < end:
            time.sleep(0.01)
        assert w.web.uploading()
        # a second upload is refused at once, a download still gets the other slot
        assert http(port, "/upload?name=two.bin", method="POST", body=b"x" * 10)[0] == 503
        (w.root / "sd" / "logs" / "2024-01-01.csv").write_bytes(b"Zeit\r\n" * 100)
        status, took = http(port, "/logs/2024-01-01.csv")
        assert status == 200 and took < 1
        # 10 bytes a second is below the minimum rate: the slot is freed after the grace time
        t0 = time.monotonic()
        while w.web.jobs and time.monotonic() - t0 < 15:
            try:
                slow.send(b"x" * 10)
            except OSError:
                break
            time.sleep(1)
        assert not w.web.jobs and w.web.slow_dropped == 1
        print("\nslow upload dropped after %.1f s" % (time.monotonic() - t0))
        assert time.monotonic() - t0 < 10
        assert not (w.root / "sd" / "logs" / "slow.bin").exists()
        slow.close()
    finally:
        w.close()


def test_wrong_passwords_make_the_client_wait_longer_and_longer(tmp_path):
    w = Web(tmp_path, {})
    port = w.config.WEB_PORT
    try:
        codes = []
        for _ in range(4):
            codes.append(http(port, "/api/now", password="guess")[0])
        assert codes == [401, 401, 401, 401]
        status, took = http(port, "/api/now")  # even the right password waits now
        assert status == 429 and took < 0.2  # refused at once: nothing blocks
        assert http(port, "/api/now", source="127.0.0.2")[0] == 200  # another client is not
        time.sleep(1.1)
        assert http(port, "/api/now", password="guess")[0] == 401  # 5th: 2 s
        waits = []
        for _ in range(2):  # ends with the 6th, then the 7th wrong password
            t0 = time.monotonic()
            while http(port, "/api/now", password="guess")[0] == 429:
                time.sleep(0.05)
            waits.append(time.monotonic() - t0)
        t0 = time.monotonic()
        while http(port, "/api/now")[0] == 429:  # the right password, once the wait is over
            time.sleep(0.05)
        waits.append(time.monotonic() - t0)
        print("\nwaits after the 5th, 6th, 7th wrong password: %s s" % ["%.1f" % x for x in waits])
        assert 1.7 < waits[0] < 2.6 and 3.7 < waits[1] < 4.6 and 7.7 < waits[2] < 8.6
        assert http(port, "/api/now", password="guess")[0] == 401  # a good login reset it
        assert w.web.throttled > 0
    finally:
        w.close()


def test_host_header_must_name_this_board(tmp_path):
    w = Web(tmp_path, {"HOSTNAME": "meter-7"})
    port = w.config.WEB_PORT
    try:
        w.state.ip = "192.168.1.50"
        for host, want in (
            ("evil.example", 421),
            ("evil.example:%d" % port, 421),
            ("192.168.1.51:%d" % port, 421),
            ("meter-7", 200),
            ("METER-7.local:%d" % port, 200),
            ("meter-7.local.", 200),
            ("192.168.1.50:%d" % port, 200),
            ("localhost:%d" % port, 200),
        ):
            assert http(port, "/api/now", host=host)[0] == want, host
        assert http(port, "/api/now", host="192.168.4.1")[0] == 421
        w.state.ap_mode = True
        assert http(port, "/api/now", host="192.168.4.1:%d" % port)[0] == 200
        assert w.web.refused_host == 4
    finally:
        w.close()


def test_a_browser_opening_six_connections_at_once_gets_six_answers(tmp_path):
    """Browsers open several connections before they send on them: none may be cut while its
    request is on the way (the slowloris defence must not hit them)."""
    w = Web(tmp_path, {})
    port = w.config.WEB_PORT
    try:
        for _ in range(5):
            socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(6)]
            time.sleep(0.05)  # connected, not yet sent: what a browser's page load looks like
            for s in socks:
                s.sendall(
                    (
                        "GET /api/now HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Basic %s"
                        "\r\n\r\n" % (port, token())
                    ).encode()
                )
            codes = []
            for s in socks:
                s.settimeout(5)
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                codes.append(data.split(b" ", 2)[1] if data else None)
                s.close()
            assert codes == [b"200"] * 6, codes
        assert w.web.evicted == 0
    finally:
        w.close()


def test_password_guessing_from_40_addresses_is_held_to_the_global_pace(tmp_path):
    """Issue 18.5: the limit held per address only - 40 loopback addresses had 43 536 wrong
    passwords checked in 20 s. Now at most ~1.5 checked guesses a second in all (401: checked
    and wrong; 429: refused unchecked); a device that logged in before still gets in during the
    attack, any other right after it; the status says that logins are being refused."""
    import json
    import os

    seconds = float(os.environ.get("GUESS_ATTACK_S", "8"))  # the figure: 20
    w = Web(tmp_path, {})
    port = w.config.WEB_PORT
    codes = {}
    stop = threading.Event()
    lock = threading.Lock()

    def attacker(i):
        sources = ["127.0.0.%d" % (2 + k) for k in range(40) if k % 4 == i]
        n = 0
        while not stop.is_set():
            try:
                status, _ = http(port, "/api/now", password="guess%d" % n, source=sources[n % 10])
            except OSError:
                status = "error"
            n += 1
            with lock:
                codes[status] = codes.get(status, 0) + 1

    try:
        assert http(port, "/api/now")[0] == 200  # the owner's PC logged in before
        threads = [threading.Thread(target=attacker, args=(i,), daemon=True) for i in range(4)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        owner = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            owner.append(http(port, "/api/now"))
        status_body = w.request("/api/status")
        problems = [p["code"] for p in json.loads(status_body[1])["problems"]]
        stop.set()
        for t in threads:
            t.join(15)
        took = time.monotonic() - t0
        # the attack is over: the owner on a phone that never logged in before
        t1 = time.monotonic()
        tries = 0
        while True:
            tries += 1
            status, _ = http(port, "/api/now", source="127.0.0.60")
            if status == 200 or time.monotonic() - t1 > 15:
                break
            time.sleep(0.2)
        back = time.monotonic() - t1
    finally:
        stop.set()
        w.close()
    checked = codes.get(401, 0)
    print(
        "\n40 addresses, %.1f s: %d wrong passwords checked (%.2f/s), %d refused unchecked (429),"
        " %d other %s; owner (logged in before) during the attack: %s; a new device after the"
        " attack got in after %.1f s (%d tries); problems %s"
        % (
            took,
            checked,
            checked / took,
            codes.get(429, 0),
            sum(v for k, v in codes.items() if k not in (401, 429)),
            codes,
            [s for s, _ in owner],
            back,
            tries,
            problems,
        )
    )
    assert codes.get(429, 0) > 100  # the attack was there
    assert checked <= 1.5 * took + 5, codes
    assert all(s == 200 for s, _ in owner), owner
    assert status == 200 and back < 10
    assert "login_refused" in problems
    c = w.state.counters
    assert c.logins_refused == codes.get(429, 0) + tries - 1 and c.login_failures == checked


def test_logins_refused_leaves_the_status_a_minute_after_the_last_refusal(tmp_path):
    w = Web(tmp_path, {})
    try:
        now = w.web.ticks()
        w.state.login_refused_ticks = (now - 59000) & 0x1FFFFFFF
        time.sleep(0.1)
        assert "login_refused" in w.state.problems(now, ticks_diff)
        w.state.login_refused_ticks = (now - 61000) & 0x1FFFFFFF
        end = time.monotonic() + 2
        while w.state.login_refused_ticks is not None and time.monotonic() < end:
            time.sleep(0.01)
        assert "login_refused" not in w.state.problems(w.web.ticks(), ticks_diff)
    finally:
        w.close()


class _BoardConn:
    """An accepted connection that behaves like CircuitPython's socket towards a client that
    reads nothing: after its first bytes a send waits out the socket's timeout and raises
    OSError(EAGAIN), until the client gives up (``client_timeout``): then ECONNRESET."""

    def __init__(self, conn, client_timeout):
        self._conn = conn
        self._give_up = time.monotonic() + client_timeout
        self._timeout = None
        self.sent = 0
        self.tries = 0

    def settimeout(self, t):
        self._timeout = t
        self._conn.settimeout(0 if t is None or t == 0 else t)

    def send(self, data):
        if self.sent < 64:
            n = self._conn.send(bytes(data[: 64 - self.sent]))
            self.sent += n
            return n
        self.tries += 1
        if time.monotonic() >= self._give_up:
            raise OSError(104, "ECONNRESET")  # the client timed out and closed
        if self._timeout:
            time.sleep(min(self._timeout, 0.05))  # the board waits its timeout (shortened)
        raise OSError(11, "EAGAIN")  # CircuitPython: a send that timed out

    def __getattr__(self, name):
        return getattr(self._conn, name)


class _BoardPool:
    """``socket`` whose server sockets hand out :class:`_BoardConn` connections."""

    def __init__(self, client_timeout):
        self.client_timeout = client_timeout
        self.conns = []
        for name in ("AF_INET", "SOCK_STREAM", "SOL_SOCKET", "SO_REUSEADDR", "timeout"):
            setattr(self, name, getattr(socket, name))
        self.getaddrinfo = socket.getaddrinfo

    def socket(self, *args):
        pool = self
        real = socket.socket(*args)

        class Listen:
            def accept(self):
                conn, addr = real.accept()
                wrapped = _BoardConn(conn, pool.client_timeout)
                pool.conns.append(wrapped)
                return wrapped, addr

            def __getattr__(self, name):
                return getattr(real, name)

        return Listen()


def test_a_client_that_reads_nothing_holds_a_pass_no_longer_than_the_send_deadline(tmp_path):
    # issue 18 item 11: adafruit_httpserver's Response._send_bytes retries EAGAIN without end;
    # on the board a send that times out raises EAGAIN, so one client that did not read its
    # answer held the loop until the client gave up (urllib: 10 s)
    from test_settings_safety import PASSWORD as PW
    from test_settings_safety import card

    from sim.hardware import ManualClock
    from smartmeter import config as config_mod
    from smartmeter.datalog.sd import Storage
    from smartmeter.state import State
    from smartmeter.web.server import WebServer

    class Actions:
        def restart(self):
            pass

        def setup_mode(self):
            pass

    _root, fs = card(tmp_path)
    config = config_mod.load(lambda _n: None, {"WEB_PORT": free_port(), "WEB_PASSWORD": PW})
    storage = Storage(fs, None, config.LOG_DIR, ManualClock(), config.LOG_MIN_FREE_MB)
    storage.begin()
    pool = _BoardPool(client_timeout=3.0)
    web = WebServer(config, State(), pool, storage, Actions(), SimClock())
    web.start("127.0.0.1")
    port = config.WEB_PORT
    longest = {}
    try:
        for path in ("/api/now", "/api/status", "/api/usage?resolution=day"):
            s = socket.create_connection(("127.0.0.1", port))
            head = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\n\r\n"
            s.sendall((head % (path, token(PW))).encode())
            worst = 0.0
            end = time.monotonic() + 4
            while time.monotonic() < end and (not pool.conns or pool.conns[-1].tries < 1):
                t0 = time.monotonic()
                web.poll()
                worst = max(worst, time.monotonic() - t0)
            for _ in range(20):
                t0 = time.monotonic()
                web.poll()
                worst = max(worst, time.monotonic() - t0)
            longest[path] = worst
            s.close()
    finally:
        web.stop()
    print("\nlongest pass per answer to a client that reads nothing:", longest)
    assert max(longest.values()) < 0.5, longest


def test_the_pass_time_counter_is_wall_clock_time_in_the_simulator(tmp_path):
    # issue 18 item 11: /api/status's slowest_pass_ms counted the simulator's clock, which runs
    # --speed times fast: at --speed 60 a pass of 167 ms read as a "loop pass of 10 s". The
    # board's ticks are wall time; the simulator's pass counter must be too.
    values = {"METER_KEY": KEY, "LOG_DIR": "/sd/logs", "LOG_MIN_FREE_MB": 1}
    sim = Simulation(
        values,
        data_dir=str(tmp_path / "sim"),
        clock=SimClock(speed=60),
        display="none",
        quiet=True,
        web=False,
    )

    class Slow:
        name = "slow"

        def poll(self, now_ms):
            time.sleep(0.03)  # a pass of at least 30 ms wall time

    sim.app.sinks.append(Slow())
    longest = 0.0
    try:
        for _ in range(5):
            t0 = time.monotonic()
            sim.app.loop_once()
            longest = max(longest, time.monotonic() - t0)
    finally:
        sim.close()
    counted = sim.app.state.counters.slowest_pass_ms
    print("\nlongest pass %.0f ms wall, counter %d ms" % (longest * 1000, counted))
    assert 30 <= counted <= longest * 1000 + 5  # was about 60 times the wall time
    assert "longest_pass_ms %d " % counted in sim.summary()
