"""InfluxDB output against a real InfluxDB 1.x server (Debian's influxd, started here).

The real firmware loop (``app.build``: CSV on a fake SD card, the InfluxDB output on real
sockets) decodes telegrams of the virtual meter; every reading's points are queried back over
HTTP. Then the server is stopped long enough for the output's ring to overflow and started
again: the gap comes back from the SD card and every telegram's point is there. The 2.x write
endpoint, auth failures and a server that never answers are checked against small real socket
servers (Debian has no InfluxDB 2.x).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from fakefs import FakeFS
from influxdb import influxdb_server
from servers import black_hole_server, free_port

from sim.hardware import Console, Hardware, ManualClock, SimClock, SimUart
from sim.meter import VirtualMeter
from smartmeter import app as app_mod
from smartmeter import config
from smartmeter.datalog.csvlog import read_rows
from smartmeter.outputs import influx as influx_mod
from smartmeter.protocol import reading as r
from smartmeter.state import State
from smartmeter.timeutil import epoch_from_fields
from smartmeter.web import api

KEY_HEX = "36C66639E48A8CA4D6BC8B282A793BBB"
DB = "meter"
START = epoch_from_fields((2024, 6, 1, 8, 0, 0))
STEP_S = 5  # Netz NOE pushes every 5 s


def settings(url, **extra):
    values = {
        "METER_KEY": KEY_HEX,
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "INFLUX_URL": url,
        "INFLUX_DB": DB,
        "HOSTNAME": "house",
        "ENERGY_OFFSET_WH": 1000,
    }
    values.update(extra)
    return config.load(lambda _n: None, values)


class Rig:
    """The real app with CSV and InfluxDB, a virtual meter, a clock stepped by hand."""

    def __init__(self, url):
        self.clock = ManualClock(start_epoch=START, ticks=(1 << 29) - 30_000)  # wraps soon
        self.fs = FakeFS()
        self.fs.dirs.add("/sd")
        self.uart = SimUart(buffer_size=8192)
        hw = Hardware(
            uart=self.uart,
            fs=self.fs,
            mount=self.fs.mount,
            log_dir="/sd/logs",
            pool=socket,
            clock=self.clock,
            console=Console(out=None, interactive=False),
        )
        self.app = app_mod.build(hw, settings(url), web=False)
        self.sink = [s for s in self.app.sinks if getattr(s, "name", "") == "influx"][0]
        self.meter = VirtualMeter("netznoe", bytes.fromhex(KEY_HEX), None, seed=3)
        self.epochs = []
        self.slowest = 0.0

    def telegram(self):
        epoch = self.clock.epoch
        self.uart.push(self.meter.telegram(epoch))
        self.epochs.append(epoch)
        for _ in range(5):
            t0 = time.monotonic()
            self.app.loop_once()
            self.slowest = max(self.slowest, time.monotonic() - t0)
            self.clock.advance(STEP_S * 1000 // 5)

    def idle(self, passes):
        for _ in range(passes):
            self.app.loop_once()
            self.clock.advance(1000)

    def csv_rows(self):
        out = {}
        for name in sorted(self.fs.listdir("/sd/logs")):
            for epoch, values in read_rows(self.fs, "/sd/logs/" + name):
                out[epoch] = values
        return out


def _expected_fields(rig):
    """Field -> value of the latest reading as the output must write it."""
    st = rig.app.state
    latest = st.latest
    want = {}
    for source in (latest.values, latest.derived, rig.app.extras):
        for key, value in source.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in want:
                want[key] = value + (1000 if key == r.A_PLUS else 0)
    return want


def test_every_reading_arrives_and_an_outage_is_backfilled_from_the_sd_card(tmp_path):
    with influxdb_server(tmp_path / "influx") as server:
        server.create_database(DB)
        rig = Rig(server.url)
        wants = {}
        for _ in range(12):  # one minute
            rig.telegram()
            wants[rig.epochs[-1]] = _expected_fields(rig)
        rig.idle(15)
        status = rig.app.state.sinks["influx"]
        assert status.state == "ok", status.error
        rows = server.query(DB, 'SELECT * FROM "smartmeter"')
        got = {row["time"]: row for row in rows}
        assert sorted(got) == rig.epochs  # every reading, once
        for epoch, want in wants.items():
            row = got[epoch]
            assert row["host"] == "house"
            fields = {k: v for k, v in row.items() if k not in ("time", "host") and v is not None}
            assert set(fields) == set(want), epoch
            for key, value in want.items():
                assert fields[key] == pytest.approx(value, abs=5e-4), (epoch, key)
        assert status.sent == sum(len(w) for w in wants.values())
        assert rig.slowest < 1.5, rig.slowest

        # outage: 5 minutes of telegrams while the server is down - more than the ring holds
        server.stop()
        down_from = len(rig.epochs)
        for _ in range(60):
            rig.telegram()
        assert status.state == "error" and status.failed >= 3
        assert status.dropped > 0 and rig.sink.ring.gap_from is not None
        assert rig.app.state.problems()[-1] == "influx"
        assert rig.slowest < 1.5, rig.slowest  # a refused server costs the loop nothing
        server.start()
        for _ in range(40):  # back within one backoff step (60 s), then the gap in slices
            rig.telegram()
            if not rig.sink.ring.count and rig.sink.ring.gap_from is None:
                break
        rig.idle(15)
        assert status.state == "ok", status.error
        assert rig.sink.ring.gap_from is None and rig.sink.backfilled > 0
        rows = server.query(DB, 'SELECT "1-0:1.8.0", "1-0:1.7.0" FROM "smartmeter"')
        got = {row["time"]: row for row in rows}
        csv = rig.csv_rows()
        assert sorted(csv) == rig.epochs  # the SD card has every telegram
        assert sorted(got) == rig.epochs, set(rig.epochs) - set(got)  # and now so has InfluxDB
        for epoch in rig.epochs[down_from:]:
            assert got[epoch]["1-0:1.8.0"] == csv[epoch][r.A_PLUS], epoch
            assert got[epoch]["1-0:1.7.0"] == csv[epoch][r.P_PLUS], epoch


class Capture:
    """A tiny HTTP server on a real socket: records requests, answers with ``status``."""

    def __init__(self, status=204, body=b""):
        self.status = status
        self.body = body
        self.requests = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.stopped = False
        self.thread.start()

    def _serve(self):
        self.lsock.settimeout(0.05)
        while not self.stopped:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    body += conn.recv(4096)
                self.requests.append((head.decode(), body))
                reason = {204: "No Content", 401: "Unauthorized"}.get(self.status, "Bad Request")
                conn.sendall(
                    b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (self.status, reason.encode(), len(self.body), self.body)
                )

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.lsock.close()


def _reading(p_plus=1055, a_plus=10_860_961):
    rd = r.Reading()
    rd.values = {r.A_PLUS: a_plus, r.P_PLUS: p_plus, r.P_MINUS: 0, r.U_L1: 234.5}
    rd.values[r.DEVICE_NAME] = "KFM1234"  # text: not a field
    rd.derive()
    return rd


def _sink(url, clock=None, **extra):
    cfg = settings(url, **extra)
    st = State()
    sink = influx_mod.InfluxSink(cfg, socket, st, clock or SimClock())
    return sink, st


def test_v2_write_with_token_and_the_line_format():
    cap = Capture()
    try:
        sink, st = _sink(
            "http://127.0.0.1:%d/" % cap.port,
            INFLUX_ORG="home & co",
            INFLUX_TOKEN="s3cret-token",
            INFLUX_MEASUREMENT="power meter",
        )
        sink.on_reading(_reading(), 1_700_000_000, {"temperature": 21.25, "rssi": None})
        assert sink.poll(0) is True
        head, body = cap.requests[0]
        line1, *headers = head.split("\r\n")
        assert line1 == "POST /api/v2/write?org=home%20%26%20co&bucket=meter&precision=s HTTP/1.1"
        assert "Authorization: Token s3cret-token" in headers
        fields = "1-0:1.8.0=10861961,1-0:1.7.0=1055,1-0:2.7.0=0,1-0:32.7.0=234.500"
        assert body.startswith(b"power\\ meter,host=house " + fields.encode() + b",")
        assert body.endswith(b",temperature=21.250 1700000000\n")
        assert b"KFM1234" not in body and b"rssi" not in body
        fields_sent = body.count(b"=") - 1  # host=house is a tag
        assert st.sinks["influx"].state == "ok" and st.sinks["influx"].sent == fields_sent == 5
        assert "s3cret" not in repr(api.sink_dict(st.sinks["influx"]))
    finally:
        cap.close()


def test_v1_basic_auth_refused_is_an_auth_problem_and_backs_off():
    cap = Capture(status=401, body=b'{"error":"authorization failed"}')
    try:
        clock = ManualClock(ticks=0)
        sink, st = _sink("http://127.0.0.1:%d" % cap.port, clock, INFLUX_TOKEN="meter:pw")
        sink.on_reading(_reading(), 1_700_000_000, {})
        assert sink.poll(0) is False
        head, _ = cap.requests[0]
        assert head.startswith("POST /write?db=meter&precision=s HTTP/1.1")
        assert "Authorization: Basic bWV0ZXI6cHc=" in head.split("\r\n")
        assert st.sinks["influx"].state == "auth" and "influx_auth" in st.problems()
        assert sink.queued > 0  # kept for when the token is fixed
        assert sink.poll(999) is False and len(cap.requests) == 1  # backing off 1 s
        assert sink.poll(1000) is False and len(cap.requests) == 2
        assert sink.poll(2999) is False and len(cap.requests) == 2  # then 2 s
    finally:
        cap.close()


def test_rejected_data_is_dropped_and_counted_not_resent():
    cap = Capture(status=400, body=b'{"error":"field type conflict"}')
    try:
        sink, st = _sink("http://127.0.0.1:%d" % cap.port)
        sink.on_reading(_reading(), 1_700_000_000, {})
        points = sink.queued
        assert sink.poll(0) is False
        assert st.sinks["influx"].state == "rejected" and sink.rejected == points
        assert sink.queued == 0 and sink.dropped == points
        assert "field type conflict" in st.sinks["influx"].error
    finally:
        cap.close()


@pytest.mark.parametrize("accept", [True, False])
def test_a_server_that_never_answers_costs_one_poll_budget(accept):
    with black_hole_server(accept=accept) as (host, port, _held):
        sink, st = _sink("http://%s:%d" % (host, port))
        sink.on_reading(_reading(), 1_700_000_000, {})
        t0 = time.monotonic()
        assert sink.poll(0) is False
        took = time.monotonic() - t0
        assert took < 1.0 + 0.3, took  # _POLL_BUDGET_MS plus scheduling slack
        assert st.sinks["influx"].state == "error" and sink.queued > 0


def test_unresolvable_host():
    sink, st = _sink("http://no-such-host.invalid:%d" % free_port())
    sink.on_reading(_reading(), 1_700_000_000, {})
    assert sink.poll(0) is False
    assert st.sinks["influx"].state == "unresolved"
    assert st.sinks["influx"].error == "cannot resolve INFLUX_URL"
