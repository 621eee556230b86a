"""The firmware inside genuine CircuitPython (the board in a box, board/run.py): loop cost per
telegram in the CircuitPython VM beside CPython and the MicroPython VM, and the soak.

``loop_rows(vm)``: bench/vm_loop.py - the real super-loop with a telegram and without (decode,
state, CSV row; as bench/loop_bench.py on CPython) - run in the CircuitPython 10.3 VM from the
release zip's .mpy files (and from the .py sources), in the MicroPython 1.27 VM (.py, node) and
in CPython, on the same telegrams.

``soak(vm, hours)``: the release zip in the box at the PSRAM heap (2M) for ``hours`` of board
time, one telegram a board second (the box clock ``speed`` times faster), the web page polled
every 2 board seconds, MQTT to Mosquitto and Graphite to a line counter on: sent, decoded,
rows on the FAT image (lost = sent - rows), MemoryErrors, the free heap each board hour (now,
and live after a collection, less the display stand-ins that a board keeps in C), the longest
loop pass, web polls answered, MQTT states and Graphite lines received.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests" / "host"
KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
START_EPOCH = 1_714_557_600  # bench/vm_loop.py's clock


def load_runner():
    """board/run.py as a module (``board`` is CircuitPython's name: the folder is no package)."""
    mod = sys.modules.get("board_run")
    if mod is None:
        spec = importlib.util.spec_from_file_location("board_run", ROOT / "board" / "run.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["board_run"] = mod
        spec.loader.exec_module(mod)
    return mod


def build_release(out):
    """``make release`` into ``out``; the CircuitPython 10 zip."""
    subprocess.run(
        [sys.executable, "tools/release.py", "--quiet", "--majors", "10", "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    return next(Path(out).glob("smartmeter-*-circuitpython-10.zip"))


def _telegrams(path, n):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from sim.meter import VirtualMeter

    meter = VirtualMeter("netznoe", bytes.fromhex(KEY), None, seed=2)
    with open(path, "w") as f:
        for i in range(n):
            f.write(meter.telegram(START_EPOCH + 5 * i).hex() + "\n")


def _result(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            parts = line.split()[1:]
            return {parts[i]: int(parts[i + 1]) for i in range(0, len(parts), 2)}
    raise RuntimeError("no RESULT line:\n" + text[-2000:])


def loop_rows(vm, n=300, release=None):
    """{label: RESULT dict} for each VM that is there; telegram_us is the median pass with a
    telegram, idle_us the median pass without."""
    rows = {}
    script = str(ROOT / "bench" / "vm_loop.py")
    # the CSV folder on a RAM disk where there is one: on the PC's disk each row's open/append/
    # close cost the VM ~2.6 ms (overlay file system), which says nothing about a board's SD
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        tmp = Path(tmp)
        hexfile = tmp / "telegrams.hex"
        _telegrams(hexfile, n)

        def fresh_root(name):
            root = tmp / name
            (root / "sd").mkdir(parents=True)
            return str(root)

        if vm:
            release = release or build_release(tmp / "dist")
            drive = tmp / "drive"
            with zipfile.ZipFile(release) as z:
                z.extractall(drive)
            top = next(p for p in drive.iterdir() if p.is_dir())
            for label, path in (
                ("CircuitPython 10.3 VM, release .mpy", "%s:%s" % (top, top / "lib")),
                ("CircuitPython 10.3 VM, .py sources", "%s:%s" % (ROOT, top / "lib")),
            ):
                done = subprocess.run(
                    [vm, "-X", "heapsize=2M", script, str(hexfile), str(n), fresh_root(label[-4:])],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    env=dict(os.environ, MICROPYPATH=path),
                    cwd=tmp,
                    check=False,
                )
                rows[label] = _result(done.stdout + done.stderr)
        if shutil.which("node"):
            runner = ROOT / "tests" / "host" / "mpy" / "run.mjs"
            done = subprocess.run(
                ["node", str(runner), "--file", str(ROOT / "smartmeter"), "--file"]
                + [str(ROOT / "drivers"), "--file", "%s=telegrams.hex" % hexfile]
                + ["--heapsize", "8m", script, "telegrams.hex", str(n), "", "python"],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=ROOT,
                check=False,
            )
            text = done.stdout + done.stderr
            if "is not installed" in text:  # node is there, the VM package is not
                rows["MicroPython 1.27 VM (wasm): not measured"] = text.strip()[:100]
            else:
                rows["MicroPython 1.27 VM (wasm), .py, Python AES"] = _result(text)
        done = subprocess.run(
            [sys.executable, script, str(hexfile), str(n), fresh_root("cpython")],
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            cwd=tmp,
            check=False,
        )
        rows["CPython %d.%d" % sys.version_info[:2]] = _result(done.stdout + done.stderr)
    return rows


# -- the soak ------------------------------------------------------------------------------------


class LineCounter:
    """A Graphite (carbon plaintext) endpoint that counts the lines it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.host, self.port = self.sock.getsockname()
        self.lines = 0
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        conn.settimeout(1.0)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self.lines += data.count(b"\n")

    def close(self):
        self._stop.set()
        self.sock.close()


def _poll(port, password, counts, stop, every_s):
    token = base64.b64encode(("admin:%s" % password).encode()).decode()
    while not stop.wait(every_s):
        req = urllib.request.Request("http://127.0.0.1:%d/api/now" % port)
        req.add_header("Authorization", "Basic " + token)
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                json.loads(resp.read())
                counts["ok"] += 1
        except (OSError, ValueError) as exc:
            if counts["ok"]:
                counts["failed"] += 1
                counts["last_error"] = repr(exc)[:120]
            else:  # the web server is not listening yet (it starts after the first passes)
                counts["before_up"] += 1
        counts["slowest_s"] = max(counts["slowest_s"], time.monotonic() - t0)


def soak(vm, hours=24.0, speed=20, heap="2M", out=print, release=None, every=3600, poll_s=2.0):
    """Run the soak; ``out`` gets one line per board ``every`` seconds; returns the figures."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from mosquitto import mosquitto_broker
    from servers import free_port
    from test_mqtt import Listener

    run = load_runner()
    telegrams = int(hours * 3600)
    res = {"telegrams": telegrams, "speed": speed, "heap": heap, "hours": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        release = release or build_release(tmp / "dist")
        graphite = LineCounter()
        with mosquitto_broker(tmp / "mqtt") as broker:
            listener = Listener(broker)
            port = free_port()
            b = run.Board(
                vm,
                data_dir=tmp / "data",
                release=release,
                speed=speed,
                heap=heap,
                out=None,
                http_port=port,
                telegrams=telegrams,
                start=1_782_381_600,  # 2026-06-25T10:00Z, a fixed simulated date
                settings={
                    "NTP_SERVER": "",
                    "MQTT_HOST": broker.host,
                    "MQTT_PORT": broker.port,
                    "GRAPHITE_HOST": graphite.host,
                    "GRAPHITE_PORT": graphite.port,
                },
            )
            b.meter.interval_ms = 1000  # a telegram every board second
            polls = {"ok": 0, "failed": 0, "before_up": 0, "slowest_s": 0.0, "last_error": None}
            stop = threading.Event()
            t0 = time.monotonic()
            try:
                b.start()
                b.wait_for("code.py output:", timeout=60)
                poller = threading.Thread(
                    target=_poll,
                    args=(port, b.values["WEB_PASSWORD"], polls, stop, poll_s / speed),
                    daemon=True,
                )
                poller.start()
                mark = every
                deadline = time.monotonic() + telegrams / speed * 3 + 120
                while b.sent < telegrams and time.monotonic() < deadline:
                    time.sleep(0.2)
                    if b.sent >= mark:
                        row = _hour_row(b, mark // 3600 if every >= 3600 else mark)
                        res["hours"].append(row)
                        out(_fmt_row(row))
                        mark += every
                time.sleep(max(3.0, 3 * 1000 / speed / 1000))  # the last telegram: read and sent
                stop.set()
                poller.join(35)
                res["final"] = _hour_row(b, "end")
                start = len(b.lines)
                counters = b.status()
                res["counters"] = counters
                res["sinks"] = {}
                for line in b.lines[start:]:
                    m = _SINK.match(line)
                    if m:
                        res["sinks"][m.group(1)] = line.strip()
            finally:
                stop.set()
                b.stop()
                graphite.close()
                listener.close()
            res["wall_s"] = time.monotonic() - t0
            res["sent"] = b.sent
            res["rows"] = b.rows()
            res["lost"] = b.sent - (b.sent_before_uart or 0) - res["rows"]
            res["overflow"] = b.overflow
            res["polls"] = polls
            res["mqtt_states"] = len(listener.states())
            res["graphite_lines"] = graphite.lines
            res["boots"] = list(b.boots)
            res["ended"] = b.ended
    return res


_SINK = re.compile(r"^(graphite|mqtt|influx) \S+ sent \d+ failed \d+ queued \d+ dropped \d+")


def _hour_row(b, label):
    heap = b.heap_now()
    c = b.status()
    return {
        "hour": label,
        "sent": b.sent,
        "decoded": c.get("decoded"),
        "csv_rows": c.get("csv_rows"),
        "memory_errors": c.get("memory_errors"),
        "free": heap["free"],
        "live_free": heap["live_free"],
        "standins": heap["standins"],
        "slowest_pass_ms": c.get("slowest_pass_ms"),
    }


def _fmt_row(r):
    return (
        "board hour %-4s sent %6d decoded %6d rows %6d MemoryError %d  free %7d  "
        "live free %7d (+%d display stand-ins)  longest pass %d board-ms"
        % (
            r["hour"],
            r["sent"],
            r["decoded"] or 0,
            r["csv_rows"] or 0,
            r["memory_errors"] or 0,
            r["free"],
            r["live_free"],
            r["standins"],
            r["slowest_pass_ms"] or 0,
        )
    )


def report_soak(res, out):
    out(
        "soak: %d telegrams (%.1f board hours) at %s heap, clock x%d, %.0f s wall"
        % (res["telegrams"], res["telegrams"] / 3600, res["heap"], res["speed"], res["wall_s"])
    )
    c = res.get("counters", {})
    out(
        "sent %d rows %d lost %d uart_overflow %d MemoryError %d decoded %d duplicates %d"
        % (
            res["sent"],
            res["rows"],
            res["lost"],
            res["overflow"],
            c.get("memory_errors", -1),
            c.get("decoded", -1),
            c.get("duplicates", -1),
        )
    )
    p = res["polls"]
    out(
        "web polls answered %d failed %d (%d before it listened; slowest %.2f s) | MQTT states %d"
        " | Graphite lines %d"
        % (
            p["ok"],
            p["failed"],
            p["before_up"],
            p["slowest_s"],
            res["mqtt_states"],
            res["graphite_lines"],
        )
    )
    for line in res.get("sinks", {}).values():
        out("sink " + line)
    out(
        "longest loop pass %d board-ms = %.1f ms of this PC's time | boots %s | ended %s"
        % (
            c.get("slowest_pass_ms", -1),
            c.get("slowest_pass_ms", 0) / res["speed"],
            res["boots"],
            res["ended"],
        )
    )
    if res["hours"]:
        lives = [r["live_free"] for r in res["hours"]]
        out(
            "live free heap over the hours: first %d last %d min %d max %d (spread %d)"
            % (lives[0], lives[-1], min(lives), max(lives), max(lives) - min(lives))
        )


def report_loop(rows, out):
    out("%-46s %12s %10s %12s" % ("VM", "telegram µs", "idle µs", "cost µs"))
    for label, r in rows.items():
        if isinstance(r, str):
            out("%-46s %s" % (label, r))
            continue
        out(
            "%-46s %12d %10d %12d   (max %d µs; %d decoded, %d rows, %d MemoryError)"
            % (
                label,
                r["telegram_us"],
                r["idle_us"],
                r["telegram_us"] - r["idle_us"],
                r["telegram_max_us"],
                r["decoded"],
                r["csv_rows"],
                r["memory_errors"],
            )
        )
