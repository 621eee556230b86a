# Runs INSIDE the MicroPython VM (bench/memory_bench.py starts it through mpy_memory.mjs): the
# real firmware (smartmeter.app.build + App.loop_once) with fake hardware, one configuration.
#
# argv[1]: configuration, parts joined by "+": csv, display, web, mqtt, graphite, influx. With
# the display, each telegram goes to the next screen (every screen of SCREENS, then the message),
# so the figures include the largest screen.
# The driver calls step() once per JavaScript call and collects garbage between calls (inside
# one call the VM does not reclaim anything), so each step's figures are exact: the heap in use
# as it starts ("before", after the collection between calls) and at its end before any
# collection ("peak": everything it allocated counted as held at once).
import errno
import gc
import sys
import time

if not hasattr(time, "monotonic"):  # CircuitPython has them; adafruit_httpserver imports them
    time.monotonic = lambda: time.ticks_ms() / 1000
if not hasattr(time, "monotonic_ns"):
    time.monotonic_ns = lambda: time.ticks_ms() * 1_000_000

try:  # CircuitPython's C binascii takes str; the VM's Python version wants bytes
    import binascii

    _a2b = binascii.a2b_base64
    binascii.a2b_base64 = lambda data: _a2b(data.encode() if isinstance(data, str) else data)
except ImportError:
    pass

PARTS = sys.argv[1].split("+")
TELEGRAMS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
# argv[3]: modules whose import raises MemoryError (as on a board whose heap is too small), to
# check app.build's handling under MicroPython; "-" for none
FAIL = [] if len(sys.argv) < 4 or sys.argv[3] == "-" else sys.argv[3].split(",")
# argv[4]: modules imported one per step before anything else (the per-module figures of
# ``memory_bench.module_costs``: each step's retained heap is that module's, with whatever it
# imports that was not loaded yet), "-" or absent for none
FIRST = [] if len(sys.argv) < 5 or sys.argv[4] == "-" else sys.argv[4].split(",")
KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
START_EPOCH = 1_714_557_600  # 2024-05-01 10:00 UTC
EAGAIN = getattr(errno, "EAGAIN", 11)
STAND_INS = "display stand-ins (C on the board)"
MESSAGE = 'Connect to WiFi "Smartmeter-1A2B", password q8Zt4mWx, then open http://192.168.4.1'


# -- fake hardware -------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms & 0x3FFFFFFF

    def time(self):
        return START_EPOCH + self.ms // 1000


class Uart:
    def __init__(self):
        self.data = b""

    def readinto(self, buf):
        n = min(len(buf), len(self.data))
        if not n:
            return None
        buf[:n] = self.data[:n]
        self.data = self.data[n:]
        return n


class Console:
    def __init__(self):
        self.lines = 0
        self.last = []

    def read_char(self):
        return None

    def write(self, line):
        self.lines += 1
        self.last = self.last[-4:] + [line]


class Display:
    def __init__(self):
        self.root_group = None
        self.auto_refresh = True
        self.brightness = 1.0
        self.refreshes = 0

    def refresh(self, **kwargs):
        self.refreshes += 1


class Radio:
    connected = True
    ip = "192.168.1.50"
    rssi = -60

    def reconnect(self):
        pass


class Conn:
    """One client connection: the request bytes in, the response bytes counted."""

    def __init__(self, request):
        self.request = request
        self.sent = 0
        self.head = b""

    def settimeout(self, t):
        pass

    def setblocking(self, flag):
        pass

    def recv_into(self, buf, nbytes=0):
        n = min(len(buf), nbytes or len(buf), len(self.request))
        if not n:
            raise OSError(EAGAIN)
        buf[:n] = self.request[:n]
        self.request = self.request[n:]
        return n

    def send(self, data):
        if len(self.head) < 16:
            self.head += bytes(data[:16])
        self.sent += len(data)
        return len(data)

    def sendall(self, data):
        self.send(data)

    def close(self):
        pass


class Listener:
    def __init__(self, pool):
        self.pool = pool

    def setsockopt(self, *args):
        pass

    def bind(self, addr):
        pass

    def listen(self, n):
        pass

    def setblocking(self, flag):
        pass

    def settimeout(self, t):
        pass

    def accept(self):
        if not self.pool.pending:
            raise OSError(EAGAIN)
        conn = self.pool.pending.pop(0)
        self.pool.served.append(conn)
        return conn, ("192.168.1.10", 50000)

    def close(self):
        pass


class Outbound:
    """A client socket to Graphite/InfluxDB (accepts everything) or an MQTT broker."""

    def __init__(self, pool):
        self.pool = pool
        self.port = None
        self.inbox = b""
        self.sent = 0

    def settimeout(self, t):
        pass

    def setblocking(self, flag):
        pass

    def setsockopt(self, *args):
        pass

    def connect(self, addr):
        self.port = addr[1]

    def send(self, data):
        data = bytes(data)
        self.sent += len(data)
        self.pool.out_bytes += len(data)
        if self.port == 1883 and data:
            kind = data[0] & 0xF0
            if kind == 0x10:  # CONNECT -> CONNACK
                self.inbox += b"\x20\x02\x00\x00"
            elif kind == 0x80 and len(data) > 3:  # SUBSCRIBE -> SUBACK
                self.inbox += b"\x90\x03" + data[2:4] + b"\x00"
            elif kind == 0xC0:  # PINGREQ -> PINGRESP
                self.inbox += b"\xd0\x00"
        return len(data)

    def sendall(self, data):
        self.send(data)

    def recv_into(self, buf, nbytes=0):
        n = min(len(buf), nbytes or len(buf), len(self.inbox))
        if not n:
            raise OSError(EAGAIN)
        buf[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return n

    def recv(self, bufsize):
        buf = bytearray(bufsize)
        n = self.recv_into(buf)
        return bytes(buf[:n])

    def close(self):
        pass


class Pool:
    AF_INET = 2
    SOCK_STREAM = 1
    SOL_SOCKET = 1
    SO_REUSEADDR = 2

    def __init__(self):
        self.pending = []
        self.served = []
        self.out_bytes = 0

    def getaddrinfo(self, host, port, *args):
        return [(2, 1, 0, "", ("192.168.1.2", port))]

    def socket(self, family=2, kind=1, proto=0):
        if self is _LISTEN_TARGET[0] and not _LISTEN_TARGET[1]:
            _LISTEN_TARGET[1] = True
            return Listener(self)
        return Outbound(self)


_LISTEN_TARGET = [None, False]  # the first socket() of the web server is its listener


def mount():
    try:
        import os

        os.mkdir("/sd")
    except OSError:
        pass


# -- the bench -----------------------------------------------------------------------------------
class Bench:
    def __init__(self):
        self.peak = self.live = 0
        self.peak_step = self.live_step = None
        self.first_live = None
        self.n = 0
        self.screens = []  # the display screens shown (each built when shown)
        self.stand_ins = 0  # heap of the displayio/terminalio/vectorio/bitmaptools stand-ins
        with open("telegrams.hex") as f:
            self.telegrams = [line.strip() for line in f if line.strip()]

    def plan(self):
        if "display" in PARTS:
            yield STAND_INS, self.import_stand_ins
        for mod in FIRST:
            yield "import " + mod, (lambda m=mod: __import__(m))
        yield "core imports", self.import_core
        modules = {
            "csv": ("smartmeter.datalog.csvlog", "smartmeter.datalog.sd"),
            "display": ("smartmeter.ui.control", "smartmeter.ui.screens"),
            "graphite": ("smartmeter.outputs.graphite",),
            "influx": ("smartmeter.outputs.influx",),
            "mqtt": ("smartmeter.outputs.mqtt", "smartmeter.outputs.mqttclient"),
            "web": ("smartmeter.web.server", "smartmeter.web.routes", "smartmeter.web.api"),
        }
        for part in PARTS:
            for mod in modules.get(part, ()):
                if mod[len("smartmeter.") :] not in FAIL:
                    yield "import " + mod, (lambda m=mod: __import__(m))
        yield "build", self.build
        for i in range(TELEGRAMS):
            yield "telegram %d" % (i + 1), (lambda i=i: self.telegram(i))
            for k in range(3):  # the passes after it (display, sinks' timed work, web)
                yield "telegram %d pass %d" % (i + 1, k + 2), self.one_pass
        yield "idle pass", self.app.loop_once  # its "before" is the heap held after the run

    def import_stand_ins(self):
        import bitmaptools  # noqa: F401
        import displayio  # noqa: F401
        import terminalio  # noqa: F401
        import vectorio  # noqa: F401

    def import_core(self):
        from smartmeter import app, config  # noqa: F401
        from smartmeter.datalog import sd  # noqa: F401

    def build(self):
        from smartmeter import app, config, hardware

        if FAIL:
            real_load = app._load

            def load(name):
                if name in FAIL:
                    raise MemoryError("memory allocation failed, allocating 4096 bytes")
                return real_load(name)

            app._load = load

        values = {
            "METER_KEY": KEY,
            "LOG_DIR": "/sd/logs",
            "LOG_MIN_FREE_MB": 1,
            "CIRCUITPY_WIFI_SSID": "home",
            "WEB_PASSWORD": "benchpass",
            "UI_LANGUAGE": "en",
        }
        if "graphite" in PARTS:
            values["GRAPHITE_HOST"] = "graphite.local"
        if "influx" in PARTS:
            values["INFLUX_HOST"] = "influx.local"
        if "mqtt" in PARTS:
            values["MQTT_HOST"] = "broker.local"
        if "csv" not in PARTS:
            values["SD_MODE"] = "none"
        cfg = config.load(lambda _n: None, values)
        self.clock = Clock()
        self.uart = Uart()
        self.console = Console()
        self.pool = (
            Pool()
            if ("web" in PARTS or "mqtt" in PARTS or "graphite" in PARTS or "influx" in PARTS)
            else None
        )
        _LISTEN_TARGET[0] = self.pool if "web" in PARTS else None
        self.display = Display() if "display" in PARTS else None
        fs = None
        if "csv" in PARTS:
            from smartmeter.datalog.sd import RealFS

            fs = RealFS(fsync=False)
        hw = hardware.Hardware(
            uart=self.uart,
            display=self.display,
            fs=fs,
            mount=mount if fs is not None else None,
            log_dir="/sd/logs",
            pool=self.pool,
            radio=Radio() if self.pool is not None else None,
            clock=self.clock,
            console=self.console,
            mem_free=gc.mem_free,
            aes_backend="python",
        )
        self.app = app.build(hw, cfg, web="web" in PARTS)

    def telegram(self, i):
        raw = bytes.fromhex(self.telegrams[i % len(self.telegrams)])
        self.uart.data = raw
        ui = self.app.ui
        if ui is not None and ui.view is not None:  # every screen in turn, and the message
            from smartmeter.ui.screens import SCREENS

            names = [name for name, _cycle in SCREENS] + ["message"]
            name = names[i % len(names)]
            if name == "message":
                ui.show_message(MESSAGE)
            else:
                ui.goto(name)
            if name not in self.screens:
                self.screens.append(name)
        if "web" in PARTS and i % 5 == 4:
            auth = "Authorization: Basic YWRtaW46YmVuY2hwYXNz\r\n"  # admin:benchpass
            for path in ("/api/status", "/"):
                req = "GET %s HTTP/1.1\r\nHost: 192.168.1.50:8080\r\n%s\r\n" % (path, auth)
                self.pool.pending.append(Conn(req.encode()))
        self.one_pass()

    def one_pass(self):
        self.app.loop_once()
        self.clock.ms += 1250

    def step(self):
        if self.n == 0:
            self._plan = self.plan()
        self.n += 1
        try:
            label, fn = next(self._plan)
        except StopIteration:
            return None
        fn()
        return label

    def record(self, label, before, during, after):
        """One step's figures, printed at once (kept nowhere: the bench must not grow).

        The stand-ins' own code is not counted: on the board those modules are C in flash.
        """
        if label == STAND_INS:
            self.stand_ins = after - before
            print("step %-40s %d bytes, not counted" % (label, self.stand_ins))
            return
        before -= self.stand_ins
        during -= self.stand_ins
        after -= self.stand_ins
        print("step %-40s before %7d peak %7d after %7d" % (label, before, during, after))
        if during > self.peak:
            self.peak, self.peak_step = during, label
        if before > self.live:  # the heap in use as the step starts (collected at top level)
            self.live, self.live_step = before, label

    def report(self):
        st = self.app.state
        c = st.counters
        served = [(conn.head[:12], conn.sent) for conn in getattr(self.pool, "served", [])]
        print("config", "+".join(PARTS))
        print("decoded", c.decoded, "csv_rows", c.csv_rows, "sinks", len(self.app.sinks))
        print("left_out", ",".join(st.left_out) or "-", "errors", dict(st.last_errors))
        print("web_responses", len(served), served[:2])
        print("console", self.console.lines, self.console.last)
        print("screens", ",".join(self.screens) or "-")
        print(
            "out_bytes",
            getattr(self.pool, "out_bytes", 0),
            " ".join("%s %s" % (n, s.state) for n, s in st.sinks.items()),
        )
        print(
            "RESULT peak %d at %s live %d at %s"
            % (self.peak, self.peak_step, self.live, self.live_step)
        )


bench = Bench()
_state = [None, 0, 0]  # label, heap before, heap at the end of the step


def _s():
    """One step (the driver calls this in its own runPython call)."""
    _state[1] = gc.mem_alloc()
    _state[0] = bench.step()
    _state[2] = gc.mem_alloc()
    return _state[0] is not None


def _c():
    """Collect, then record the step (a separate runPython call: the wasm stack is clean)."""
    gc.collect()
    if _state[0] is not None:
        bench.record(_state[0], _state[1], _state[2], gc.mem_alloc())
