"""Graphite sink against a real carbon-cache (whisper files read back), outages with CSV
backfill, refused/unresolvable/black-hole servers (bounded loop passes, no socket leak), and the
line format. Readings come from the simulator's value model when it imports, else a local one.
"""

from __future__ import annotations

import random
import socket
import time

import pytest
from servers import black_hole_server, carbon_server, open_fds

from sim.hardware import SimClock
from smartmeter.outputs.graphite import GraphiteSink
from smartmeter.protocol import reading as r
from smartmeter.protocol.reading import Reading
from smartmeter.state import State

BUDGET_S = 1.0 + 0.25  # _POLL_BUDGET_MS plus scheduling slack
STEP_S = 5  # meter push period (Netz NOE)
TICK_MS = 500  # 10x speed: one telegram per 500 ms of loop ticks
WALL = SimClock()  # the poll() budget runs on the PC's monotonic clock


class Cfg:
    def __init__(self, host="127.0.0.1", port=2003, prefix="smartmeter", interval=0, offset=0):
        self.GRAPHITE_HOST = host
        self.GRAPHITE_PORT = port
        self.GRAPHITE_PREFIX = prefix
        self.GRAPHITE_INTERVAL_S = interval
        self.ENERGY_OFFSET_WH = offset


def _value_model():
    try:
        from sim.meter import VirtualMeter

        meter = VirtualMeter("netznoe", seed=7)
        return meter.values
    except ImportError:  # simulator not importable yet: same shape, local model
        rng = random.Random(7)
        energy = [10_860_961, 1_234_567]

        def values(epoch):
            p = rng.randint(0, 3000) - 800
            energy[0] += max(p, 0) * STEP_S // 3600
            energy[1] += max(-p, 0) * STEP_S // 3600
            v = {r.A_PLUS: energy[0], r.A_MINUS: energy[1], r.R_PLUS: 420_000}
            v.update({r.R_MINUS: 1_100_000, r.P_PLUS: max(p, 0), r.P_MINUS: max(-p, 0)})
            v[r.POWER_FACTOR] = 0.95
            for k in range(3):
                v[r.VOLTAGES[k]] = round(229.0 + 4 * rng.random(), 1)
                v[r.CURRENTS[k]] = round(abs(p) / 3 / 230 / 0.95, 2)
            return v

        return values


class Feed:
    """A meter at 10x speed: telegrams STEP_S apart in meter time, TICK_MS apart in loop ticks."""

    def __init__(self, start_epoch):
        self.values = _value_model()
        self.epoch = start_epoch
        self.now_ms = 0
        self.sent = []  # (epoch, reading, extras)
        self.csv = []  # what the CSV sink wrote: (epoch, values incl. derived and extras)

    def next(self):
        reading = Reading()
        reading.values = self.values(self.epoch)
        reading.derive()
        extras = {"rssi": -60 - len(self.sent) % 7, "temperature": 21.5, "humidity": 40.25}
        self.sent.append((self.epoch, reading, extras))
        row = dict(reading.values)
        row.update(reading.derived)
        row.update(extras)
        self.csv.append((self.epoch, row))
        epoch = self.epoch
        self.epoch += STEP_S
        self.now_ms += TICK_MS
        return reading, epoch, extras

    def read_rows(self, since, until, max_rows):
        """The backfill: CSV rows with since <= epoch < until, oldest first."""
        return [row for row in self.csv if since <= row[0] < until][:max_rows]


def expected(reading, epoch, extras, offset=0, prefix="smartmeter"):
    """{metric: value} the spec says one telegram becomes (original paths plus additions)."""
    v, d = reading.values, reading.derived
    out = {}
    for k in (1, 2, 3):
        out["strom.L%d" % k] = round(v[r.CURRENTS[k - 1]], 2)
        out["spannung.L%d" % k] = round(v[r.VOLTAGES[k - 1]], 1)
    out["momentanleistung.plus"] = v[r.P_PLUS]
    out["momentanleistung.minus"] = v[r.P_MINUS]
    out["momentanleistung.netto"] = v[r.P_PLUS] - v[r.P_MINUS]
    out["wirkenergie.plus"] = v[r.A_PLUS] + offset
    out["wirkenergie.minus"] = v[r.A_MINUS]
    out["blindenergie.plus"] = v[r.R_PLUS]
    out["blindenergie.minus"] = v[r.R_MINUS]
    out["cosphi"] = round(v[r.POWER_FACTOR], 3)
    if r.APPARENT_POWER in d:
        out["scheinleistung"] = round(d[r.APPARENT_POWER])
    if r.DERIVED_PF in d:
        out["leistungsfaktor"] = round(d[r.DERIVED_PF], 3)
    out["data.rssi"] = extras["rssi"]
    out["data.pcb_t"] = extras["temperature"]
    out["data.pcb_rh"] = extras["humidity"]
    return {prefix + "." + k: val for k, val in out.items()}


def expected_all(sent):
    exp: dict[str, dict[int, float]] = {}
    for epoch, reading, extras in sent:
        for metric, value in expected(reading, epoch, extras).items():
            exp.setdefault(metric, {})[epoch] = value
    return exp


class RecordingPool:
    """The socket module, recording every sent byte (for format tests) - real sockets."""

    def __init__(self, sndbuf=None):
        self.AF_INET = socket.AF_INET
        self.SOCK_STREAM = socket.SOCK_STREAM
        self.sndbuf = sndbuf

    def getaddrinfo(self, host, port):
        return socket.getaddrinfo(host, port)

    def socket(self, family, kind):
        s = socket.socket(family, kind)
        if self.sndbuf:  # model lwIP's small TCP send buffer (TCP_SND_BUF ~5.7 KiB)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        return s


class FakeSock:
    def __init__(self, out):
        self.out = out

    def settimeout(self, t):
        assert 0 < t <= 0.5

    def connect(self, addr):
        pass

    def send(self, data):
        self.out.extend(bytes(data))
        return len(data)

    def close(self):
        pass


class FakePool:
    AF_INET = 2
    SOCK_STREAM = 1

    def __init__(self):
        self.out = bytearray()

    def getaddrinfo(self, host, port):
        return [(2, 1, 6, "", (host, port))]

    def socket(self, family, kind):
        return FakeSock(self.out)


@pytest.fixture
def carbon(tmp_path):
    with carbon_server(tmp_path) as server:
        yield server


def _start_epoch():
    return int(time.time()) - 3 * 3600  # inside the 6 h retention, well in the past


# -- format --------------------------------------------------------------------------------
def test_lines_use_original_paths_and_exact_values():
    pool = FakePool()
    st = State()
    sink = GraphiteSink(Cfg(prefix="home.meter", offset=9_520_525), pool, st, WALL)
    reading = Reading()
    reading.values = {r.I_L1: 3.83, r.U_L1: 234.5, r.P_PLUS: 1055, r.P_MINUS: 0}
    reading.values.update({r.A_PLUS: 10_860_961, r.POWER_FACTOR: 0.968})
    reading.derive()
    sink.on_reading(reading, 1_700_000_000, {"rssi": -67, "temperature": 23.456, "humidity": None})
    assert pool.out == b""  # on_reading does no I/O
    assert sink.poll(0) is True
    lines = pool.out.decode().splitlines()
    assert lines[:6] == [
        "home.meter.strom.L1 3.83 1700000000",
        "home.meter.momentanleistung.plus 1055 1700000000",
        "home.meter.wirkenergie.plus 20381486 1700000000",  # + ENERGY_OFFSET_WH, integer
        "home.meter.cosphi 0.968 1700000000",
        "home.meter.data.rssi -67 1700000000",
        "home.meter.data.pcb_t 23.46 1700000000",
    ]
    assert "home.meter.spannung.L1 234.5 1700000000" in lines
    assert "home.meter.momentanleistung.netto 1055 1700000000" in lines
    assert "home.meter.scheinleistung 898 1700000000" in lines  # 234.5 * 3.83
    assert "home.meter.leistungsfaktor 1.000 1700000000" in lines  # clamped
    assert "home.meter.status.telegrams 0 1700000000" in lines
    names = [line.split()[0] for line in lines]
    # absent values are absent, never 0
    assert not any(
        n.endswith(("strom.L2", "spannung.L3", "pcb_rh", "blindenergie.plus")) for n in names
    )
    assert st.sinks["graphite"].state == "ok" and sink.sent == len(lines) and sink.queued == 0


def test_disabled_and_clockless_readings_send_nothing():
    pool = FakePool()
    st = State()
    off = GraphiteSink(Cfg(host=""), pool, st, WALL)
    assert st.sinks["graphite"].state == "disabled"
    reading = Reading()
    reading.values = {r.P_PLUS: 5}
    off.on_reading(reading, 1_700_000_000, {})
    assert off.poll(0) is False and off.queued == 0
    on = GraphiteSink(Cfg(), pool, State(), WALL)
    on.on_reading(reading, None, {})  # RTC not set, meter sent no time
    assert on.queued == 0 and on.poll(0) is False and on.connections == 0


def test_interval_sends_first_telegram_of_each_bucket_and_batches():
    pool = FakePool()
    sink = GraphiteSink(Cfg(interval=30), pool, State(), WALL)
    reading = Reading()
    reading.values = {r.P_PLUS: 100}
    base = 1_700_000_010  # a multiple of 30
    for k in range(12):  # 60 s of 5-s telegrams
        sink.on_reading(reading, base + 1 + 5 * k, {})
    assert sink.poll(0) is True
    stamps = sorted({int(line.split()[2]) for line in pool.out.decode().splitlines()})
    assert stamps == [base + 1, base + 31]
    sink.on_reading(reading, 1_700_000_100, {})
    assert sink.poll(29_000) is False  # next batch not before the interval
    assert sink.poll(30_000) is True


def test_queue_is_bounded_drops_oldest_and_remembers_the_gap():
    small = GraphiteSink(Cfg(), FakePool(), State(), WALL, backfill=lambda *a: [], queue_bytes=4096)
    big = GraphiteSink(Cfg(), FakePool(), State(), WALL, queue_bytes=65536)
    feed = Feed(1_700_000_000)
    for _ in range(30):
        row = feed.next()
        small.on_reading(*row)
        big.on_reading(*row)
    assert big.dropped == 0
    assert small.ring.used <= 4096 and 0 < small.queued < big.queued
    assert small.dropped + small.queued == big.queued  # every point is either kept or counted
    first_kept = small.ring._epoch[small.ring._first]
    # exactly the dropped telegrams: from the first one to just past the last one
    assert (small.ring.gap_from, small.ring.gap_until) == (1_700_000_000, first_kept - STEP_S + 1)
    assert small.state.sinks["graphite"].dropped == small.dropped


# -- real carbon-cache -----------------------------------------------------------------------
def test_every_telegram_lands_in_whisper_with_its_timestamp(carbon):
    host, port, _ = carbon
    st = State()
    st.counters.checksum_errors = 3
    sink = GraphiteSink(Cfg(host, port), socket, st, WALL)
    feed = Feed(_start_epoch())
    for _ in range(30):
        sink.on_reading(*feed.next())
        for _ in range(5):  # loop passes between telegrams
            sink.poll(feed.now_ms)
            feed.now_ms += 100
    sink.poll(feed.now_ms + 10_000)
    assert sink.queued == 0 and sink.dropped == 0 and sink.failed == 0
    assert st.sinks["graphite"].state == "ok"
    assert sink.connections <= 8  # batched: ~1 per 5 s of ticks, not 16 per telegram
    wrong = carbon.wait_points(expected_all(feed.sent))
    assert not wrong, list(wrong.items())[:3]
    # status counters arrive too (once a minute, with the telegram's timestamp)
    first = feed.sent[0][0]
    assert not carbon.wait_points({"smartmeter.status.checksum_errors": {first: 3}})


def test_outage_then_backfill_leaves_no_hole(carbon):
    host, port, _ = carbon
    st = State()
    feed = Feed(_start_epoch())
    sink = GraphiteSink(Cfg(host, port), socket, st, WALL, backfill=feed.read_rows)

    def run(telegrams, passes=5):
        for _ in range(telegrams):
            sink.on_reading(*feed.next())
            for _ in range(passes):
                t = time.monotonic()
                sink.poll(feed.now_ms)
                assert time.monotonic() - t < BUDGET_S
                feed.now_ms += TICK_MS // passes

    run(5)
    feed.now_ms += 5000
    assert sink.poll(feed.now_ms) and sink.queued == 0
    # carbon-cache may lose its unwritten cache on SIGTERM: let it persist what it got first
    assert not carbon.wait_points(expected_all(feed.sent))
    carbon.stop()
    run(40)  # 200 s of meter time with the server down
    assert st.sinks["graphite"].state == "error" and "refused" in st.sinks["graphite"].error
    assert sink.dropped > 0 and sink.ring.gap_from is not None  # the queue overflowed
    carbon.start()
    back = feed.now_ms
    ok_at = None
    for _ in range(200):
        run(1)
        if ok_at is None and st.sinks["graphite"].state == "ok":
            ok_at = feed.now_ms
        if sink.queued == 0 and sink.ring.gap_from is None and ok_at is not None:
            break
    assert ok_at is not None and ok_at - back <= 60_000 + 5_000  # within one back-off step
    assert sink.ring.gap_from is None and sink.backfilled > 0
    wrong = carbon.wait_points(expected_all(feed.sent))
    assert not wrong, list(wrong.items())[:3]


# -- unreachable servers: loop passes bounded, no socket leak ---------------------------------
def _drive_failures(sink, n, refill=None):
    """Call poll() until n connection attempts failed; returns the longest call in seconds."""
    now = 0
    longest = 0.0
    failed0 = sink.failed
    for _ in range(n * 3):
        if refill is not None:
            refill()
        t = time.monotonic()
        sink.poll(now)
        longest = max(longest, time.monotonic() - t)
        now += 61_000  # past any back-off
        if sink.failed - failed0 >= n:
            break
    assert sink.failed - failed0 == n
    return longest


def _loaded_sink(host, port, pool, st, telegrams=20):
    sink = GraphiteSink(Cfg(host, port), pool, st, WALL)
    feed = Feed(_start_epoch())
    for _ in range(telegrams):
        sink.on_reading(*feed.next())
    return sink


def test_refused_port_backs_off_and_leaks_no_socket():
    st = State()
    with socket.socket() as s:  # a port that was free a moment ago and is closed now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = _loaded_sink("127.0.0.1", port, socket, st)
    fds = open_fds()
    longest = _drive_failures(sink, 100)
    assert open_fds() == fds
    assert longest < 0.1
    assert (
        st.sinks["graphite"].state == "error"
        and st.sinks["graphite"].error == "port %d refused" % port
    )
    assert st.sinks["graphite"].failed == 100 and sink.queued > 0  # kept for later
    # exponential back-off, capped at 60 s: attempts at 0, 1, 3, 7, 15, 31, 63, 123 s ...
    fresh = _loaded_sink("127.0.0.1", port, socket, State())
    attempts = []
    for second in range(0, 300):
        before = fresh.connections
        fresh.poll(second * 1000)
        if fresh.connections > before:
            attempts.append(second)
    assert attempts[:8] == [0, 1, 3, 7, 15, 31, 63, 123]
    assert attempts[8:] == [183, 243]


def test_unresolvable_host_is_shown_and_backs_off():
    st = State()
    sink = _loaded_sink("nosuchhost.invalid", 2003, socket, st)
    fds = open_fds()
    _drive_failures(sink, 3)
    assert open_fds() == fds
    assert st.sinks["graphite"].state == "unresolved"
    assert st.sinks["graphite"].error == "cannot resolve nosuchhost.invalid"
    assert "graphite" in st.problems()
    assert sink.connections == 0
    assert sink.poll(122_500) is False and sink.failed == 3  # backs off between attempts


@pytest.mark.parametrize("accept", [True, False], ids=["accepts-never-reads", "never-accepts"])
def test_black_hole_keeps_poll_within_budget(accept):
    st = State()
    with black_hole_server(accept=accept, rcvbuf=1) as (host, port, held):
        # lwIP's TCP send buffer is ~5.7 KiB; the PC's default would swallow a whole batch
        pool = RecordingPool(sndbuf=1)
        sink = GraphiteSink(Cfg(host, port), pool, st, WALL)
        feed = Feed(_start_epoch())

        def refill():
            for _ in range(10):
                sink.on_reading(*feed.next())

        fds = open_fds()
        longest = _drive_failures(sink, 2, refill)
        assert longest < BUDGET_S
        assert open_fds() - len(held) == fds  # the server's held sockets are its own
        assert st.sinks["graphite"].state == "error" and "timeout" in st.sinks["graphite"].error
        # a 10x meter while the black hole persists: few blocking passes thanks to the back-off
        slow = 0
        now = 10_000_000
        for _ in range(240):  # 120 s of loop ticks, 500 ms per pass, a telegram each pass
            sink.on_reading(*feed.next())
            t = time.monotonic()
            sink.poll(now)
            took = time.monotonic() - t
            assert took < BUDGET_S
            slow += took > 0.05
            now += 500
        assert slow <= 5  # back-off 4, 8, 16, 32, 60 s: attempts at 0, 4, 12, 28, 60 s
        assert sink.ring.used <= sink.ring.capacity and sink.dropped > 0  # bounded, drop-oldest
        assert open_fds() - len(held) == fds


# -- device dialect ----------------------------------------------------------------------------
_MPY_SCRIPT = """
import gc
from smartmeter.protocol import reading as r
from smartmeter.outputs.graphite import GraphiteSink
from smartmeter.state import State

class Cfg:
    GRAPHITE_HOST = "10.0.0.2"
    GRAPHITE_PORT = 2003
    GRAPHITE_PREFIX = "smartmeter"
    GRAPHITE_INTERVAL_S = 0

class Sock:
    def __init__(self, out, refuse):
        self.out = out
        self.refuse = refuse
    def settimeout(self, t):
        pass
    def connect(self, addr):
        if self.refuse:
            raise OSError(111)
    def send(self, data):
        self.out.extend(data)
        return len(data)
    def close(self):
        pass

class Pool:
    AF_INET = 2
    SOCK_STREAM = 1
    def __init__(self):
        self.out = bytearray()
        self.refuse = True
    def getaddrinfo(self, host, port):
        return [(2, 1, 6, "", (host, port))]
    def socket(self, family, kind):
        return Sock(self.out, self.refuse)

pool = Pool()
st = State()
class Clock:
    def ticks_ms(self):
        return 0

sink = GraphiteSink(Cfg(), pool, st, Clock(), queue_bytes=4096)
rd = r.Reading()
rd.values = {r.I_L1: 3.83, r.U_L1: 234.5, r.P_PLUS: 1055, r.A_PLUS: 10860961, r.POWER_FACTOR: 0.968}
rd.derive()
extras = {"rssi": -67, "temperature": 23.45, "humidity": None}
sink.on_reading(rd, 1700000000, extras)
sink.poll(0)
print(st.sinks["graphite"].state, st.sinks["graphite"].error)
gc.collect()
before = gc.mem_alloc()
for k in range(20):
    sink.on_reading(rd, 1700000005 + 5 * k, extras)
per = (gc.mem_alloc() - before) // 20
print("dropped", sink.dropped > 0, "bounded", sink.ring.used <= 4096)
pool.refuse = False
while sink.poll(10 ** 6):
    pass
lines = bytes(pool.out).decode().split("\\n")
print(lines[0])
print(lines[2])
print("alloc_per_telegram", per)
"""


def test_runs_on_micropython():
    from mpy import run_micropython

    rc, out, err = run_micropython(_MPY_SCRIPT, files=["smartmeter"])
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "error port 2003 refused"
    assert lines[1] == "dropped True bounded True"
    path, value, stamp = lines[2].split()
    assert (path, value) == ("smartmeter.strom.L1", "3.83")
    assert int(stamp) > 1_700_000_005  # the oldest telegrams were dropped, the newest kept
    assert lines[3] == "smartmeter.wirkenergie.plus 10860961 " + stamp
    per = int(lines[4].split()[1])
    assert per < 2048  # small value texts only, no per-telegram buffers


# -- Grafana dashboard -------------------------------------------------------------------------
_GRAPHITE_FUNCTIONS = {  # graphite-web 1.1 render functions the dashboard may use
    "alias",
    "aliasByNode",
    "diffSeries",
    "nonNegativeDerivative",
    "scale",
    "smartSummarize",
}


def _expand(pattern):
    """Expand Graphite {a,b} globs."""
    import re

    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    out = []
    for alt in m.group(1).split(","):
        out += _expand(pattern[: m.start()] + alt + pattern[m.end() :])
    return out


def test_dashboard_queries_only_metrics_the_sink_sends():
    import json
    import re

    from _support import REPO_ROOT

    from smartmeter.outputs.graphite import METRICS, OWN_STATUS, STATUS

    dash = json.loads((REPO_ROOT / "grafana" / "dashboard.json").read_text())
    assert dash["__inputs"][0]["pluginId"] == "graphite"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["prefix"]["query"] == "smartmeter"
    sendable = {"smartmeter." + m[2] for m in METRICS}
    sendable |= {"smartmeter.status." + n for n in STATUS} | {"smartmeter.data.send_time"}
    sendable |= {"smartmeter.status.graphite_" + n for n in OWN_STATUS}
    used = set()
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            text = target["target"]
            assert text.count("(") == text.count(")"), text
            for fn in re.findall(r"([A-Za-z]+)\(", text):
                assert fn in _GRAPHITE_FUNCTIONS, (fn, text)
            for path in re.findall(r"\$prefix\.[\w.{},$]+", text):
                path = path.replace("$prefix", "smartmeter").replace("$Phase", "{L1,L2,L3}")
                for metric in _expand(path.rstrip(",")):
                    assert metric in sendable, (metric, panel["title"])
                    used.add(metric)
    # the panels the issue asks for: power import/export, phases, energy, PF, temperature
    for metric in (
        "smartmeter.momentanleistung.plus",
        "smartmeter.momentanleistung.minus",
        "smartmeter.spannung.L3",
        "smartmeter.strom.L2",
        "smartmeter.wirkenergie.plus",
        "smartmeter.cosphi",
        "smartmeter.leistungsfaktor",
        "smartmeter.data.pcb_t",
    ):
        assert metric in used, metric
    titles = " ".join(p["title"] for p in dash["panels"])
    assert "Stunde" in titles and "Tag" in titles and "Monat" in titles
