"""The memory ladder: the smallest heap each configuration needs, in the CircuitPython VM.

``python -m bench board-ladder`` (part of ``make bench`` when ``CIRCUITPYTHON`` names the VM).
The release zip (``make release``) runs in the board in a box (``board/run.py``) at a FIXED heap
(``-X heapsize``: one heap that fails an allocation instead of growing, as on a board), fed by
the simulator's virtual meter (Netz NOE, a telegram every 5 s of board time; the box clock runs
``SPEED`` times faster). A configuration passes a heap when every telegram the meter sent gives
a row on the FAT image, not one MemoryError was caught, no part was left out, and - where the
network is on - the web page answered (a GET of ``/`` with the login, every second while it
runs). The ladder steps the heap in 16 KiB; a short run finds the step, the long run (10 000
telegrams) confirms it (and steps up if it does not).

The stand-ins' heap is not the board's. On a board ``busio``, ``sdioio``, ``wifi``,
``socketpool``, ``fourwire`` ... are C modules (no heap for their code; the UART's receive
buffer lives outside the VM heap), in the box they are Python modules on the VM's heap. So
:func:`standin_heap` boots the box with a probe ``code.py`` that imports the stand-ins of the
configuration and makes the objects ``smartmeter/device.py`` makes (UART with its 8 KiB buffer,
SD card, keys, display bus, socket pool), and the box's own boot (its channel to the host, its
``time`` and ``os``), measured after collection; each run's VM heap is the board heap plus that.
The stand-ins are compiled to .mpy first (a .py compiled in the VM leaves garbage and gaps a
board never has). What the box cannot take out: the stand-ins' garbage per pass (the UART
stand-in's socket reads), which only makes the figures a little pessimistic.

Configurations: "decode + CSV" is a board without WiFi and display (the box hides ``wifi``,
``socketpool``, ``fourwire`` and ``busdisplay``: ImportError, as on a board without them);
"+ display" adds the TFT; "+ web" is WiFi on (the web page and the setup access point always
come with WiFi on the ESP32-S3); "+ MQTT", "+ Graphite", "+ InfluxDB" and "+ prices" each add
one network output to "+ web" (local servers: mosquitto, a TCP sink, an HTTP sink, an aWATTar-
shaped price answer); "everything" is all of them with the display.
"""

from __future__ import annotations

import base64
import http.server
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
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOARD = ROOT / "board"
STEP_KIB = 16
SPEED = 250  # box clock: a telegram every 20 ms of real time
LONG = 10_000
SHORT = 200

# name, display, wifi, outputs, the heap (KiB) the search starts at (below: "at most")
CONFIGS = (
    ("decode + CSV", False, False, (), 96),
    ("+ display", True, False, (), 160),
    ("+ web", False, True, (), 224),
    ("+ MQTT", False, True, ("mqtt",), 240),
    ("+ Graphite", False, True, ("graphite",), 240),
    ("+ InfluxDB", False, True, ("influx",), 240),
    ("+ prices", False, True, ("prices",), 240),
    ("everything", True, True, ("mqtt", "graphite", "influx", "prices"), 320),
)

_STATUS_ROWS = re.compile(r" dec (\d+) .*\| sd \w+ rows (\d+) ")

PROBE = """
import gc
import os
gc.collect()
a0 = gc.mem_alloc()
import board, busio, digitalio, microcontroller, supervisor, storage, watchdog, rtc
for name in ("keypad", "sdioio", "sdcardio", "fourwire", "busdisplay", "wifi", "socketpool",
             "ipaddress"):
    try:
        __import__(name)
    except ImportError:
        pass
PINS = __PINS__
def pin(key):
    name = PINS.get(key)
    return getattr(board, name) if name else None
kept = []
def attempt(what, fn):
    try:
        kept.append(fn())
    except Exception as exc:
        print("probe", what, exc)
attempt("uart", lambda: busio.UART(tx=pin("PIN_METER_TX"), rx=pin("PIN_METER_RX"),
        baudrate=2400, bits=8, parity=busio.UART.Parity.EVEN, stop=1, timeout=0,
        receiver_buffer_size=8192))
attempt("keys", lambda: __import__("keypad").Keys((pin("PIN_BTN_NEXT"), pin("PIN_BTN_ENTER")),
        value_when_pressed=False, pull=True))
def sd():
    import sdioio
    data = [pin(k) for k in ("PIN_SD_D0", "PIN_SD_D1", "PIN_SD_D2", "PIN_SD_D3")]
    return sdioio.SDCard(clock=pin("PIN_SD_CLK"), command=pin("PIN_SD_CMD"), data=data,
                         frequency=25000000)
attempt("sd", sd)
def display():
    import fourwire, busdisplay
    spi = busio.SPI(clock=pin("PIN_TFT_SCK"), MOSI=pin("PIN_TFT_MOSI"))
    bus = fourwire.FourWire(spi, command=pin("PIN_TFT_DC"), chip_select=pin("PIN_TFT_CS"),
                            reset=pin("PIN_TFT_RST"), baudrate=24000000)
    return busdisplay.BusDisplay(bus, b"\\x01\\x80\\x96", width=160, height=128, rotation=90,
                                 backlight_pin=pin("PIN_TFT_BL"))
attempt("display", display)
def pool():
    import socketpool, wifi
    return socketpool.SocketPool(wifi.radio)
attempt("pool", pool)
gc.collect()
print("STANDIN_HEAP %d" % (gc.mem_alloc() - a0))
"""


def vm_path():
    """The VM from ``CIRCUITPYTHON``, or None."""
    vm = os.environ.get("CIRCUITPYTHON")
    return vm if vm and os.path.isfile(vm) and os.access(vm, os.X_OK) else None


def _board_module():
    """board/run.py as a module (``board`` is CircuitPython's name: no package there)."""
    mod = sys.modules.get("board_run")
    if mod is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("board_run", BOARD / "run.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["board_run"] = mod
        spec.loader.exec_module(mod)
    return mod


def prepare_standins(dest, display, wifi):
    """The box's stand-ins in ``dest``, compiled to .mpy, without the modules this board lacks."""
    board_run = _board_module()
    sys.path.insert(0, str(ROOT / "tools"))
    import release

    compiler = release.ensure_compiler(release.TARGETS["10"][0], Path(sys.prefix))
    dest = Path(dest)
    absent = () if display else ("fourwire", "busdisplay")
    absent += () if wifi else ("wifi", "socketpool")
    stamp = dest / ".absent"
    if stamp.exists() and stamp.read_text() == ",".join(absent):
        return dest  # made before for the same board
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for src in sorted(Path(board_run.STANDINS).glob("*.py")):
        name = src.stem
        if name in absent:
            (dest / src.name).write_text("raise ImportError(\"no module named '%s'\")\n" % name)
        elif name == "_boxboot":  # the VM's script: stays source
            shutil.copy(src, dest / src.name)
        else:
            mpy = release.mpy_cross(compiler, src.read_bytes(), src.name)
            (dest / (name + ".mpy")).write_bytes(mpy)
    stamp.write_text(",".join(absent))
    return dest


class _Sink(threading.Thread):
    """A TCP server that reads and drops everything (Graphite's line receiver)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.bytes = 0

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                self.bytes += len(data)

    def close(self):
        self.sock.close()


class _Http(threading.Thread):
    """InfluxDB's /write (204) and aWATTar's /v1/marketdata (two days of hourly prices)."""

    def __init__(self, start_epoch):
        super().__init__(daemon=True)
        hour0 = start_epoch // 3600 * 3600 - 86400
        data = [
            {
                "start_timestamp": (hour0 + 3600 * i) * 1000,
                "end_timestamp": (hour0 + 3600 * (i + 1)) * 1000,
                "marketprice": 80.0 + (i % 24),
                "unit": "Eur/MWh",
            }
            for i in range(72)
        ]
        prices = json.dumps({"object": "list", "data": data}).encode()
        counts = self.counts = {"write": 0, "prices": 0}

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                counts["write"] += 1
                self.send_response(204)
                self.end_headers()

            def do_GET(self):  # noqa: N802
                counts["prices"] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(prices)))
                self.end_headers()
                self.wfile.write(prices)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def run(self):
        self.server.serve_forever(poll_interval=0.2)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _Mosquitto:
    def __init__(self, directory):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(binary):
            raise RuntimeError("mosquitto is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = Path(directory) / "mosquitto.conf"
        conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\n" % self.port)
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def close(self):
        self.proc.kill()
        self.proc.wait(10)


class _WebPoller(threading.Thread):
    """GET / with the login every ``every`` seconds; counts answers."""

    def __init__(self, port, user, password, every=1.0):
        super().__init__(daemon=True)
        self.url = "http://127.0.0.1:%d/" % port
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.headers = {"Authorization": "Basic " + token}
        self.every = every
        self.ok = 0
        self.failed = 0
        self.last_error = None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(self.every):
            try:
                req = urllib.request.Request(self.url, headers=self.headers)
                with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
                    r.read()
                    self.ok += r.status == 200
            except Exception as exc:  # noqa: BLE001 - counted once the page has answered
                if self.ok:
                    self.failed += 1
                self.last_error = str(exc)[:80]


def _settings(display, wifi, outputs, peers, port, watchdog_s=3600):
    # a Netz NOE customer's settings: the key, no authentication key (the meter sends no tag)
    s = {"CIRCUITPY_WIFI_SSID": "simulated" if wifi else "", "WEB_PORT": port, "METER_AUTH_KEY": ""}
    # the box clock runs SPEED times faster: the 60 s watchdog would be 0.24 s of the PC's
    # time, and a busy PC starves it (a reset that says nothing about memory)
    s["WATCHDOG_S"] = watchdog_s
    if "mqtt" in outputs:
        s.update(MQTT_HOST="127.0.0.1", MQTT_PORT=peers["mqtt"].port)
    if "graphite" in outputs:
        s.update(GRAPHITE_HOST="127.0.0.1", GRAPHITE_PORT=peers["graphite"].port)
    if "influx" in outputs:
        s.update(INFLUX_URL="http://127.0.0.1:%d" % peers["http"].port)
    if "prices" in outputs:
        s.update(
            PRICE_DYNAMIC=True,
            PRICE_API_URL="http://127.0.0.1:%d/v1/marketdata" % peers["http"].port,
        )
    return s


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_base(vm):
    """Heap the bare VM holds running a script (the board's own figure is of that order)."""
    with tempfile.TemporaryDirectory(prefix="ladder-") as tmp:
        script = Path(tmp) / "base.py"
        script.write_text("import gc\ngc.collect()\nprint(gc.mem_alloc())\n")
        out = subprocess.run(
            [vm, "-X", "heapsize=64K", str(script)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    return int(out.stdout.split()[-1])


def standin_heap(vm, display, wifi, workdir, release=None):
    """Bytes the box's stand-ins and boot hold on the VM heap for this configuration."""
    board_run = _board_module()
    standins = prepare_standins(Path(workdir) / "standins", display, wifi)
    saved = board_run.STANDINS
    board_run.STANDINS = standins
    try:
        b = board_run.Board(
            vm,
            Path(workdir) / "probe",
            settings={"CIRCUITPY_WIFI_SSID": "simulated" if wifi else ""},
            heap="1M",
            out=None,
            release=release,
        )
        pins = {k: getattr(b.cfg, k) for k in dir(b.cfg) if k.startswith("PIN_")}
        b.drive_files = {"code.py": PROBE.replace("__PINS__", repr(pins))}
        b.start()
        try:
            line = b.wait_for("STANDIN_HEAP", timeout=60)
        finally:
            b.stop()
    finally:
        board_run.STANDINS = saved
    probe = int(line.split()[-1])
    boot = (b.boot_heap[1] if b.boot_heap else 0) - vm_base(vm)
    return boot + probe, [x for x in b.lines if x.startswith("probe ")] + [
        "boot %d modules+objects %d" % (boot, probe)
    ]


def run(
    vm,
    config,
    heap_kib,
    telegrams,
    workdir,
    standin=None,
    speed=SPEED,
    release=None,
    start=None,
    watchdog_s=3600,
    heap_probe=False,
):
    """One run of ``config`` (a CONFIGS row) at a board heap of ``heap_kib``: a result dict
    (``heap_probe``: with the VM's heap and loaded modules at the end, ``Board.heap_now()``)."""
    board_run = _board_module()
    title, display, wifi, outputs = config[:4]
    workdir = Path(workdir)
    if standin is None:
        standin = standin_heap(vm, display, wifi, workdir, release)[0]
    standins = prepare_standins(workdir / "standins", display, wifi)
    peers = {}
    saved = board_run.STANDINS
    poller = None
    try:
        if "mqtt" in outputs:
            peers["mqtt"] = _Mosquitto(workdir)
        if "graphite" in outputs:
            peers["graphite"] = _Sink()
            peers["graphite"].start()
        if "influx" in outputs or "prices" in outputs:
            peers["http"] = _Http(int(time.time()))
            peers["http"].start()
        port = _free_port()
        board_run.STANDINS = standins
        data = workdir / "data"
        if data.exists():
            shutil.rmtree(data)
        b = board_run.Board(
            vm,
            data,
            settings=_settings(display, wifi, outputs, peers, port, watchdog_s),
            heap=str(heap_kib * 1024 + standin),
            speed=speed,
            out=None,
            release=release,
            start=start,
        )
        t0 = time.monotonic()
        b.start()
        try:
            try:
                b.run_until(lambda: b.line is not None or b.ended or _said(b.lines), 20)
            except TimeoutError:
                pass  # said nothing, opened no UART: the result shows the console
            if b.line is None or _no_start(b.lines):  # did not start (and said so, or crashed)
                telegrams = 0
                time.sleep(300 / b.speed)  # 5 board minutes: a reset loop would show
            if wifi and telegrams:
                poller = _WebPoller(port, b.cfg.WEB_USER, b.values["WEB_PASSWORD"])
                poller.start()
            b.telegram_limit = (b.sent_before_uart or 0) + telegrams
            per = b.meter.interval_ms / 1000 / b.speed
            if telegrams:
                b.run_until(lambda: b.sent >= b.telegram_limit or b.ended, telegrams * per * 3 + 60)
            expected = b.sent - (b.sent_before_uart or 0) - b.sent_while_searching
            if not telegrams:
                expected = 0
            end = time.monotonic() + 15
            while time.monotonic() < end and not b.ended:
                if _last_rows(b.lines)[1] >= expected or _no_start(b.lines):
                    break
                if any("CSV logging off: not enough memory" in x for x in b.lines):
                    time.sleep(0.5)  # said: the rows that still come are counted below
                    break
                time.sleep(0.2)
            heap_now = None
            if heap_probe and not b.ended:
                heap_now = b.heap_now()
        finally:
            if poller is not None:
                poller.stop.set()
            b.stop()
        rows = b.rows()
    finally:
        board_run.STANDINS = saved
        for peer in peers.values():
            peer.close()
    lines = list(b.lines)
    off = [x for x in lines if "off: not enough memory" in x]
    memory = [x for x in lines if x.startswith("memory: a pass ran out of heap")]
    passed = (
        rows >= expected > 0
        and not off
        and not memory
        and not b.ended
        and len(b.boots) == 1
        and (not wifi or (poller is not None and poller.ok > 0 and not poller.failed))
    )
    return {
        "config": title,
        "heap_kib": heap_kib,
        "vm_heap": heap_kib * 1024 + standin,
        "standin": standin,
        "expected": expected,
        "rows": rows,
        "left_out": off,
        "memory": memory,
        "csv_off": any("CSV logging off: not enough memory" in x for x in lines),
        "web_ok": poller.ok if poller else None,
        "web_failed": poller.failed if poller else None,
        "ended": b.ended,
        "boots": list(b.boots),
        "seconds": time.monotonic() - t0,
        "passed": passed,
        "lines": lines,
        "heap_now": heap_now,
    }


def _said(lines):
    return any("not enough memory" in x for x in lines)


def _no_start(lines):
    return any("not enough memory to" in x for x in lines)


def _last_rows(lines):
    for line in reversed(lines[-50:]):
        m = _STATUS_ROWS.search(line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return 0, 0


# console words of the parts ("<words> off: not enough memory"), see smartmeter/app.py PARTS
WORDS = {
    "display": "Display",
    "web": "Web page",
    "mqtt": "MQTT",
    "graphite": "Graphite",
    "influx": "InfluxDB",
    "prices": "Dynamic prices",
}


def core_ok(config, r):
    """The configuration's own parts run (optional ones - usage, setup AP - may be off, said)."""
    _title, display, wifi, outputs = config[:4]
    names = ["CSV logging"] + [WORDS[n] for n in outputs]
    names += ["Display"] if display else []
    names += ["Web page"] if wifi else []
    off = " ".join(r["left_out"])
    return (
        r["expected"] > 0
        and r["rows"] >= r["expected"]
        and not r["ended"]
        and len(r["boots"]) == 1
        and not any(n + " off:" in off for n in names)
        and (not wifi or (r["web_ok"] or 0) > 0)
    )


def ladder(vm, out, configs=CONFIGS, top_kib=768, long=LONG, short=SHORT):
    """Each configuration's steps; ``out`` gets one table row per configuration.

    ``core``: the smallest heap at which the configuration's own parts run and every telegram
    is a row (parts it can do without - usage and cost, the setup access point - may be left
    out, and are named); ``full``: nothing left out, 0 MemoryError, confirmed with ``long``
    telegrams.
    """
    results = []
    with tempfile.TemporaryDirectory(prefix="ladder-") as tmp:
        for config in configs:
            work = Path(tmp) / re.sub(r"\W+", "-", config[0]).strip("-")
            standin, _notes = standin_heap(vm, config[1], config[2], work)
            heap = config[4]
            core = full = None
            while heap <= top_kib and full is None:
                r = run(vm, config, heap, short, work, standin)
                r["start_kib"] = config[4]
                if core is None and core_ok(config, r):
                    core = r
                if r["passed"]:
                    r = run(vm, config, heap, long, work, standin)
                    if r["passed"]:
                        full = r
                        break
                heap += STEP_KIB
            results.append((config, standin, core, full))
            out(_row(config[0], standin, core, full))
    return results


def _row(title, standin, core, full):
    def left(r):
        names = sorted({x.split(" off:")[0] for x in r["left_out"]})
        return ", ".join(names) or "-"

    c = "-"
    if core:
        c = "%d KiB (off: %s)" % (core["heap_kib"], left(core))
        if core["heap_kib"] == core["start_kib"] and core["start_kib"] > 96:
            c = "at most " + c
    if full is None:
        return "| %s | %s | - | not up to the top | %.1f KiB |" % (title, c, standin / 1024)
    web = ", web page %d answers" % full["web_ok"] if full["web_ok"] is not None else ""
    return "| %s | %s | **%d KiB** | %d of %d rows, 0 MemoryError%s | %.1f KiB |" % (
        title,
        c,
        full["heap_kib"],
        full["rows"],
        full["expected"],
        web,
        standin / 1024,
    )


def report(out):
    vm = vm_path()
    if vm is None:
        out("== Memory ladder (CircuitPython VM) ==")
        out("CIRCUITPYTHON is not set to the VM: skipped (see README, Board in a box)")
        return
    board_run = _board_module()
    try:
        board_run.find_release()
    except FileNotFoundError as exc:
        out(str(exc))
        return
    out("== Memory ladder: smallest heap (16 KiB steps), CircuitPython VM at a fixed heap ==")
    out("%d telegrams each, Netz NOE virtual meter; stand-ins' own heap added on top" % LONG)
    out("| configuration | own parts run | everything runs | at that heap | stand-ins |")
    out("|---|---|---|---|---|")
    ladder(vm, out)


if __name__ == "__main__":
    report(print)
