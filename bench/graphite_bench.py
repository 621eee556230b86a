"""Graphite benchmark: bytes and TCP connections per telegram, ours vs the original firmware.

The original opened one TCP connection per metric - 16 per telegram - each carrying one line
``path value timestamp\\n`` with the value as Arduino ``String(float)`` (``'%.2f'``). Ours sends
one connection per batch (at most one per 5 s, or per ``GRAPHITE_INTERVAL_S``), more metrics
(reactive, derived power factor, net power) and status counters once a minute.

``run()`` feeds the sink readings from the simulator's value model through a counting socket pool
(no network), at the Netz NOE push period (5 s) and at 1 s (HDLC meters), and returns a dict of
numbers; ``python -m bench.graphite_bench`` prints them. Wire bytes add an estimate of the TCP/IP
overhead: 7 packets of 40 bytes (IPv4 + TCP headers, no options) per connection for the
handshake and close, plus one 40-byte header per data packet.
"""

from __future__ import annotations

import time

from sim.hardware import SimClock
from smartmeter.outputs.graphite import GraphiteSink
from smartmeter.protocol import reading as r
from smartmeter.protocol.reading import Reading
from smartmeter.state import State

_HDR = 40  # IPv4 + TCP header bytes per packet
_CONN_PACKETS = 7  # SYN, SYN-ACK, ACK, FIN, ACK, FIN, ACK
_MSS = 1460

# The original's 16 paths in its order and where each value comes from
_ORIGINAL = (
    ("smartmeter.strom.L1", r.I_L1),
    ("smartmeter.strom.L2", r.I_L2),
    ("smartmeter.strom.L3", r.I_L3),
    ("smartmeter.momentanleistung.plus", r.P_PLUS),
    ("smartmeter.wirkenergie.plus", r.A_PLUS),
    ("smartmeter.cosphi", r.POWER_FACTOR),
    ("smartmeter.data.rssi", "rssi"),
    ("smartmeter.data.pcb_t", "temperature"),
    ("smartmeter.data.pcb_rh", "humidity"),
    ("smartmeter.spannung.L1", r.U_L1),
    ("smartmeter.spannung.L2", r.U_L2),
    ("smartmeter.spannung.L3", r.U_L3),
    ("smartmeter.momentanleistung.minus", r.P_MINUS),
    ("smartmeter.wirkenergie.minus", r.A_MINUS),
    ("smartmeter.data.send_time", "send_time"),
    ("smartmeter.data.process_time", "process_time"),
)


class _Config:
    GRAPHITE_HOST = "192.168.8.42"
    GRAPHITE_PORT = 2003
    GRAPHITE_PREFIX = "smartmeter"
    ENERGY_OFFSET_WH = 0

    def __init__(self, interval_s=0):
        self.GRAPHITE_INTERVAL_S = interval_s


class _Sock:
    def __init__(self, pool):
        self.pool = pool
        self.bytes = 0

    def settimeout(self, t):
        pass

    def connect(self, addr):
        pass

    def send(self, data):
        n = len(data)
        self.bytes += n
        self.pool.payload += n
        return n

    def close(self):
        self.pool.packets += -(-self.bytes // _MSS)


class CountingPool:
    """A socketpool stand-in that counts connections, payload bytes and data packets."""

    AF_INET = 2
    SOCK_STREAM = 1

    def __init__(self):
        self.connections = 0
        self.payload = 0
        self.packets = 0

    def getaddrinfo(self, host, port):
        return [(2, 1, 6, "", (host, port))]

    def socket(self, family, kind):
        self.connections += 1
        return _Sock(self)

    def wire_bytes(self):
        return self.payload + _HDR * (self.packets + _CONN_PACKETS * self.connections)


def _values_model():
    try:
        from sim.meter import VirtualMeter

        return VirtualMeter("netznoe", seed=3).values
    except ImportError:
        import random

        rng = random.Random(3)
        energy = [10_860_961, 1_234_567]

        def values(epoch):
            p = rng.randint(0, 3000)
            energy[0] += p * 5 // 3600
            v: dict[str, float] = {r.A_PLUS: energy[0], r.A_MINUS: energy[1], r.P_PLUS: p}
            v[r.P_MINUS] = 0
            v.update({r.R_PLUS: 420_000, r.R_MINUS: 1_100_000, r.POWER_FACTOR: 0.95})
            for k in range(3):
                v[r.VOLTAGES[k]] = round(229.0 + 4 * rng.random(), 1)
                v[r.CURRENTS[k]] = round(p / 3 / 230, 2)
            return v

        return values


def _original(readings):
    """The original scheme on the same readings: one connection and one '%.2f' line per metric."""
    pool = CountingPool()
    for epoch, reading, extras in readings:
        src = dict(reading.values)
        src.update(extras)
        src.update({"send_time": 412, "process_time": 37})  # typical ms values
        for path, key in _ORIGINAL:
            value = src.get(key)
            line = "%s %.2f %d\n" % (path, value if value is not None else 0.0, epoch)
            sock = pool.socket(2, 1)
            sock.send(line.encode())
            sock.close()
    return pool


def _ours(readings, period_s, interval_s=0):
    pool = CountingPool()
    sink = GraphiteSink(_Config(interval_s), pool, State(), SimClock())
    now_ms = 0
    cpu = 0.0
    for epoch, reading, extras in readings:
        t = time.perf_counter()
        sink.on_reading(reading, epoch, extras)
        cpu += time.perf_counter() - t
        for _ in range(period_s):  # one loop pass per second of ticks
            sink.poll(now_ms)
            now_ms += 1000
    sink.poll(now_ms + 60_000)
    return pool, sink, cpu / max(1, len(readings))


def _readings(n, period_s, start=1_700_000_000):
    values = _values_model()
    out = []
    for k in range(n):
        reading = Reading()
        reading.values = values(start + k * period_s)
        reading.derive()
        extras = {"rssi": -67, "temperature": 23.45, "humidity": 45.67}
        out.append((start + k * period_s, reading, extras))
    return out


def run(telegrams=720):
    """Bytes and connections per telegram; ``telegrams`` of each scenario (720 = 1 h at 5 s)."""
    result: dict[str, dict[str, float]] = {}
    for label, period, interval in (("5s", 5, 0), ("1s", 1, 0), ("1s_interval30", 1, 30)):
        readings = _readings(telegrams, period)
        pool, sink, cpu = _ours(readings, period, interval)
        n = len(readings)
        result["ours_%s" % label] = {
            "connections_per_telegram": round(pool.connections / n, 3),
            "payload_bytes_per_telegram": round(pool.payload / n, 1),
            "wire_bytes_per_telegram": round(pool.wire_bytes() / n, 1),
            "points_per_telegram": round(sink.sent / n, 2),
            "on_reading_us": round(cpu * 1e6, 1),
        }
    readings = _readings(telegrams, 5)
    pool = _original(readings)
    n = len(readings)
    result["original"] = {
        "connections_per_telegram": round(pool.connections / n, 3),
        "payload_bytes_per_telegram": round(pool.payload / n, 1),
        "wire_bytes_per_telegram": round(pool.wire_bytes() / n, 1),
        "points_per_telegram": len(_ORIGINAL),
    }
    return result


def main():
    for name, numbers in run().items():
        print(name)
        for key, value in numbers.items():
            print("  %-28s %s" % (key, value))


if __name__ == "__main__":
    main()
