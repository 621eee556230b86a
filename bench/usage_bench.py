"""The usage summary (smartmeter/datalog/usage.py): cost per telegram, reading it, the file, and
rebuilding it from day files - on CPython and under the MicroPython VM (``bench/mpy_usage.py``).
"""

import os
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = 1727733600  # 2024-10-01 00:00 CEST


def _feed(u, n, step=5):
    a = 10_000_000
    for k in range(n):
        a += 1 + k % 3
        u.add(START + step * k, a, k // 7)


def run():
    """Dict of measurements (µs, rows/s, bytes)."""
    from smartmeter.datalog.csvlog import CsvLog
    from smartmeter.datalog.sd import RealFS, Storage
    from smartmeter.datalog.usage import Tariff, Usage
    from smartmeter.datalog.usagefile import from_bytes, size_bytes, to_bytes
    from smartmeter.datalog.usagelog import UsageSink
    from smartmeter.protocol.reading import A_MINUS, A_PLUS, Reading
    from smartmeter.state import State

    out = {}
    u = Usage(Tariff(price_mct=25_000, feed_in_mct=8_000))
    n = 100_000
    t0 = time.perf_counter()
    _feed(u, n)
    out["add_us"] = (time.perf_counter() - t0) / n * 1e6
    day = u.day_key(START + 5 * n)
    t0 = time.perf_counter()
    for _ in range(1000):
        u.period(u.days, day)
    out["period_us"] = (time.perf_counter() - t0) / 1000 * 1e6
    q = (START + 5 * n) // 900 - 100  # a quarter half-way back in the ring
    t0 = time.perf_counter()
    for _ in range(1000):
        u.quarter(q)
    out["quarter_us"] = (time.perf_counter() - t0) / 1000 * 1e6
    # the telegram that closes a quarter (prices it, books its cost to hour, day, month)
    v = Usage(Tariff(price_mct=25_000, feed_in_mct=8_000))
    closes = []
    a = 10_000_000
    for k in range(20_000):
        a += 2
        t0 = time.perf_counter()
        v.add(START + 5 * k, a, 0)
        if (START + 5 * k) % 900 == 0:
            closes.append(time.perf_counter() - t0)
    out["quarter_close_us"] = sorted(closes)[len(closes) // 2] * 1e6
    t0 = time.perf_counter()
    for _ in range(100):
        data = to_bytes(u)
    out["save_us"] = (time.perf_counter() - t0) / 100 * 1e6
    t0 = time.perf_counter()
    for _ in range(100):
        from_bytes(Usage(), data)
    out["load_us"] = (time.perf_counter() - t0) / 100 * 1e6
    out["file_bytes"] = size_bytes()
    # rebuild: 3 days of 5-second rows written by the real CSV log, replayed by the sink
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(tmp + "/sd/logs")
        fs = RealFS(fsync=False, root=tmp)
        from sim.hardware import SimClock

        clock = SimClock()
        storage = Storage(fs, None, "/sd/logs", clock)
        log = CsvLog(storage)
        log.start()
        a = 10_000_000
        rows = 3 * 86400 // 5
        for k in range(rows):
            r = Reading()
            a += 2
            r.values = {A_PLUS: a, A_MINUS: 0}
            log.write(r, START + 5 * k)
        sink = UsageSink(State(), storage, None, 0, clock.ticks_ms)
        t0 = time.perf_counter()
        passes = 0
        while sink.replaying:
            sink.poll()
            passes += 1
        took = time.perf_counter() - t0
        out["rebuild_rows"] = sink.replayed
        out["rebuild_rows_per_s"] = sink.replayed / took
        out["rebuild_passes"] = passes
    return out


def mpy():
    """Lines printed by ``bench/mpy_usage.py`` under the MicroPython VM."""
    runner = os.path.join(ROOT, "tests", "host", "mpy", "run.mjs")
    cmd = ["node", runner, "--file", "smartmeter", "--heapsize", "8m", "bench/mpy_usage.py"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    return (done.stdout or done.stderr).strip().splitlines()
