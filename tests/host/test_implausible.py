"""Values a meter cannot mean never reach a surface (issue 18 item 12).

The virtual Netz OÖ AMIS meter sends, among normal telegrams, some whose P+ register holds the
all-ones "no value" (0xFFFFFFFF: -1 W as M-Bus reads its signed DIF 04; other readers show
4 294 967 295 W) or 0x7FFFFFFF (2 147 483 647 W), and one whose A+ register is a few Wh below
the one before. Every telegram is decoded and logged; the implausible powers are absent on every
surface (CSV, display, web, the day curve, Graphite, InfluxDB, MQTT/Home Assistant), counted
and named on the status; the step back of A+ reaches neither Home Assistant nor the usage
summary. Graphite and InfluxDB get real sockets (a line collector and an HTTP collector).
"""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from servers import LOOPBACK, free_port
from test_ui import label_boxes

from sim.hardware import ManualClock
from sim.run import Simulation
from smartmeter.datalog.csvformat import read_rows
from smartmeter.protocol import reading as r
from smartmeter.timeutil import epoch_from_fields
from smartmeter.web import api

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
START = epoch_from_fields((2026, 6, 25, 8, 0, 0))  # a fixed simulated date
BAD = {3: 0xFFFFFFFF, 7: 0x7FFFFFFF, 11: 0xFFFFFFFF}  # telegram number -> P+ register
BACK = 9  # telegram number whose A+ is 7 Wh below the one before


class LineCollector:
    """Graphite's plaintext port: keeps every line received."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.data = bytearray()
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    self.data += chunk
            except OSError:
                pass
            conn.close()

    def close(self):
        self.stop = True
        self.sock.close()


class InfluxCollector:
    """An InfluxDB 1.x /write endpoint that keeps every body and answers 204."""

    def __init__(self):
        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                bodies.append(self.rfile.read(n))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_implausible_values_reach_no_surface(tmp_path):
    graphite = LineCollector()
    influx = InfluxCollector()
    values = {
        "METER_KEY": KEY,
        "METER_TRANSPORT": "amis",
        "PIN_METER_TX": "IO17",
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "CSV_DIALECT": "international",
        "CIRCUITPY_WIFI_SSID": "home",
        "GRAPHITE_HOST": LOOPBACK,
        "GRAPHITE_PORT": graphite.port,
        "INFLUX_URL": "http://%s:%d" % (LOOPBACK, influx.port),
        "MQTT_HOST": LOOPBACK,
        "MQTT_PORT": 9,  # nothing there: the states stay queued, and are read here
        "WEB_PORT": free_port(),
        "WEB_PASSWORD": "correct-horse-1",
    }
    sim = Simulation(
        values,
        data_dir=str(tmp_path / "data"),
        layout="amis",
        clock=ManualClock(start_epoch=START),
        display="png",
        quiet=True,
    )
    meter = sim.meter
    plain_values = meter.values
    plain_extended = meter.extended
    count = [0]

    def values_with_a_step_back(epoch):
        v = plain_values(epoch)
        count[0] += 1
        if count[0] == BACK:
            v[r.A_PLUS] -= 7
        return v

    def registers_with_faults(values):
        v = plain_extended(values)
        if count[0] in BAD:
            v[r.P_PLUS] = BAD[count[0]]
        return v

    meter.values = values_with_a_step_back
    meter.extended = registers_with_faults
    app = sim.app
    mqtt = next(s for s in app.sinks if s.name == "mqtt")
    states = []
    queue_on_reading = mqtt.on_reading

    def record(reading, epoch, extras):
        before = list(mqtt._queue)
        queue_on_reading(reading, epoch, extras)
        states.extend(t for t in mqtt._queue if t not in before)

    mqtt.on_reading = record
    shown = []
    display = []
    try:
        for _ in range(8):  # to the power screen (P+ and P- in large digits)
            if app.ui.screen == "power":
                break
            sim.keys.press(0)
            sim.step()
        assert app.ui.screen == "power"
        for _ in range(16 * 4):
            sim.step()
            if app.state.latest is not None:
                shown.append(api.now_json(app.state))
                display.extend(b[0] for b in label_boxes(sim.hw.display.root_group))
            sim.clock.advance(250)
        for _ in range(40):
            sim.clock.advance(1000)
            app.loop_once()
    finally:
        graphite.close()
        influx.close()
        sim.close()
    c = app.state.counters
    sent = sim.sent
    assert sent >= 14 and c.decoded == sent and c.csv_rows == sent  # every telegram logged
    assert c.implausible == 3
    assert app.state.last_errors["meter values"].startswith("1-0:1.7.0 = ")
    # CSV: the row is there, P+ is an empty field
    storage = app.storage
    rows = [row for name in storage.log_files() for row in read_rows(storage, name)]
    assert len(rows) == sent
    missing = [k for k, (_e, v) in enumerate(rows, 1) if r.P_PLUS not in v]
    assert missing == sorted(BAD)
    every = [v.get(r.P_PLUS) for _e, v in rows]
    bad_numbers = (-1, 0xFFFFFFFF, 0x7FFFFFFF)
    assert not set(every) & set(bad_numbers)
    # display: the power screen shows "--" for an absent value
    assert "--" in display
    for text in display:
        assert text.strip() not in ("-1", "2147483647", "4294967295"), text
    # web (/api/now as the page reads it) and the day curve
    for text in shown:
        for bad in bad_numbers:
            assert '": %d' % bad not in text and '":%d' % bad not in text
    watts = [w for _m, w in api.history_items(app.state.history)]
    assert watts and max(watts) < 100_000 and min(watts) > -100_000
    # Graphite
    lines = bytes(graphite.data).decode().splitlines()
    plus = [ln for ln in lines if ln.startswith("smartmeter.momentanleistung.plus ")]
    assert len(plus) == sent - len(BAD), len(plus)
    for ln in lines:
        assert not any(" %d " % b in ln for b in bad_numbers), ln
    # InfluxDB
    body = b"".join(influx.bodies).decode()
    points = body.splitlines()
    assert len(points) == sent
    assert sum('"1-0:1.7.0"=' in p or "1-0:1.7.0=" in p for p in points) == sent - len(BAD)
    for bad in bad_numbers:
        assert "=%di" % bad not in body and "=%d " % bad not in body and "=%d," % bad not in body
    # MQTT / Home Assistant
    msgs = [json.loads(t) for t in states]
    assert len(msgs) == sent
    assert sum("power_import" in m for m in msgs) == sent - len(BAD)
    energy = [m.get("energy_import") for m in msgs]
    assert energy[BACK - 1] is None  # the step back is not sent
    sent_energy = [e for e in energy if e is not None]
    assert sent_energy == sorted(sent_energy)  # what HA sees never goes back
    # usage: the step back is no meter change
    assert app.state.usage.jumps == 0
    print(
        "\nsent %d decoded %d logged %d implausible %d graphite P+ lines %d influx points %d "
        "mqtt states %d (energy held back %d) usage jumps %d"
        % (
            sent,
            c.decoded,
            c.csv_rows,
            c.implausible,
            len(plus),
            len(points),
            len(msgs),
            mqtt.held_back,
            app.state.usage.jumps,
        )
    )
