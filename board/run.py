# SPDX-License-Identifier: MIT
"""The board in a box: the release zip running in the CircuitPython VM, against the simulator's
virtual meter (``make board``; ``python board/run.py --help``).

The CIRCUITPY drive is a folder (``<data dir>/CIRCUITPY``: the zip's ``code.py``, ``.mpy`` files
and ``lib/`` exactly, ``settings.toml``, an empty ``sd`` folder as CircuitPython makes), the SD
card a FAT image (``<data dir>/sd.img``, written by CircuitPython's FAT driver in the VM), the
nvm an 8 KiB file. The VM runs ``board/standins/_boxboot.py``; the stand-ins in
``board/standins/`` are the only code here that imitates CircuitPython. The virtual meter
(``sim.meter``) pushes its telegrams over a local socket into the ``busio.UART`` stand-in, shaped
to the UART's line setting (``sim.hardware.resample``). The last line printed is the summary of
``make sim``: ``sent N decoded N logged N uart_overflow N longest_pass_ms N wd_gap_ms N``, with
``logged`` counted on the FAT image.

Python API (tests, memory ladder)::

    b = Board(vm, data_dir, settings={"MQTT_HOST": "127.0.0.1"}, heap="256K", speed=10,
              telegrams=200, out=None)
    b.start()                    # lay out the drive from the release zip, boot, start the meter
    b.wait_for("code.py output:", timeout=20)   # a console line containing the text
    b.run_until(lambda: b.sent >= 200, timeout=60)
    b.press("next")              # a button (PIN_BTN_NEXT / PIN_BTN_ENTER)
    counters = b.status()        # the firmware's 'd' console command, parsed: {"decoded": 199, ...}
    b.stop()                     # ends the VM (and the meter)
    b.rows()                     # CSV rows on the FAT image (export: b.export_sd() -> folder)
    b.lines                      # every console line so far; b.boot_heap: free/alloc after boot
    b.sent_values                # {epoch: values} of every telegram the meter sent
    b.summary()                  # the summary line

``settings``: a dict merged over the settings file (values as TOML text or Python values);
``speed``: the box clock runs N times faster (an integer; the meter pushes N times as often);
``telegrams``: the meter stops after N telegrams; ``heap``: the VM's ``-X heapsize``;
``sd_files``: ``{path on the card: bytes}`` put on the card before boot; ``drive_files``: the
same for CIRCUITPY (e.g. a test's own ``code.py``); ``nvm``: the nvm's
bytes at power-on (e.g. a remembered line setting); ``layout``: the virtual meter's;
``meter_waits=True``: the meter starts sending once the UART exists (else it sends from
power-on, as a real one, and the first telegram is lost);
``rtc_set=False``: the RTC starts in 2000 as after power-on (the default sets it to the PC's
time, as if NTP had answered). Resets
(``microcontroller.reset``, ``supervisor.reload``, a starved watchdog in RESET mode) end the VM
and start it again with the reset reason; ``b.boots`` lists them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sim import meter as meter_mod  # noqa: E402 - after the repository is on the path
from sim.hardware import resample  # noqa: E402
from smartmeter import config as config_mod  # noqa: E402

STANDINS = HERE / "standins"
SD_MB = 1024  # a sparse file: 1 GiB card, a few MB on the host disk
_COUNTER = re.compile(r"^\s+(\w+) (-?\d+)$")


def find_release(dist=REPO / "dist", major="10"):
    """The newest ``smartmeter-*-circuitpython-<major>.zip`` in ``dist``."""
    pattern = "smartmeter-*-circuitpython-%s.zip" % major
    zips = sorted(Path(dist).glob(pattern), key=os.path.getmtime)
    if not zips:
        raise FileNotFoundError("no release zip in %s: run `make release`" % dist)
    return zips[-1]


def check_vm(vm):
    """The VM path, or a one-line reason it cannot be used."""
    if not vm:
        return "CIRCUITPYTHON is not set (the path of the CircuitPython VM, see README)"
    if not (os.path.isfile(vm) and os.access(vm, os.X_OK)):
        return "CIRCUITPYTHON=%s is not an executable file" % vm
    return None


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _pin_number(name):
    return int(name[2:]) if name and name.startswith("IO") and name[2:].isdigit() else -1


def _die_with_parent():
    """The VM ends with the process that started it (Linux: PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class Board:
    """One board in a box (see the module docstring)."""

    def __init__(
        self,
        vm,
        data_dir="board-data",
        settings_file=REPO / "sim" / "settings.toml",
        settings=None,
        layout="netznoe",
        heap="2M",
        speed=1,
        http_port=None,
        seed=1,
        start=None,
        out=sys.stdout,
        release=None,
        telegrams=None,
        wifi=True,
        sd=True,
        env=None,
        sd_files=None,
        nvm=None,
        drive_files=None,
        rtc_set=True,
        meter_waits=False,
    ):
        reason = check_vm(vm)
        if reason:
            raise RuntimeError(reason)
        self.vm = os.path.abspath(vm)
        self.data_dir = Path(data_dir).resolve()
        self.drive = self.data_dir / "CIRCUITPY"
        self.sd_image = self.data_dir / "sd.img"
        self.nvm = self.data_dir / "nvm.bin"
        self.display_wire = self.data_dir / "display.wire"  # the TFT's SPI bytes (fourwire)
        self.heap = heap
        self.speed = max(1, int(speed))
        self.out = out
        self.release = release
        self.telegram_limit = telegrams
        self.env = env or {}
        self.with_sd = sd
        self.sd_files = sd_files or {}
        self.nvm_bytes = nvm
        self.drive_files = drive_files or {}
        self.rtc_set = rtc_set
        self.meter_waits = meter_waits
        with open(settings_file, encoding="utf-8") as f:
            self.settings_text = f.read()
        values, _problems = config_mod.parse_toml(self.settings_text)
        extra = dict(settings or {})
        if http_port is not None:
            extra["WEB_PORT"] = http_port
        values.update(extra)
        if not values.get("WEB_PASSWORD"):
            # the firmware would make one and show it on the TFT only: the box sets one it can print
            extra["WEB_PASSWORD"] = values["WEB_PASSWORD"] = secrets.token_urlsafe(9)
        self.extra = extra
        self.values = values
        self.cfg = config_mod.load(lambda _n: None, values)
        self.wifi = None
        if wifi and values.get("CIRCUITPY_WIFI_SSID"):
            self.wifi = {
                "ssid": values["CIRCUITPY_WIFI_SSID"],
                "password": values.get("CIRCUITPY_WIFI_PASSWORD", ""),
            }
        self.meter = meter_mod.VirtualMeter(
            layout, self.cfg.METER_KEY, self.cfg.METER_AUTH_KEY, seed
        )
        self.sent_values = {}  # epoch -> the values the meter put in that telegram
        measure = self.meter.values

        def recorded(epoch):
            values = measure(epoch)
            self.sent_values[epoch] = dict(values)
            return values

        self.meter.values = recorded
        self.start_epoch = int(start if start is not None else time.time())
        self.lines = []
        self.boots = []  # reset reasons, one per VM start
        self.ended = None  # why code.py ended (an exception), else None
        self.boot_heap = None
        self.sent = 0
        self.sent_before_uart = None
        self.sent_while_searching = 0
        self.overflow = 0
        self.wd_gap_ms = -1
        self.line = None  # the UART's (baudrate, parity), None while there is none
        self._lock = threading.Lock()
        self._tx = bytearray()
        self._conn = None
        self._proc = None
        self._stop = threading.Event()
        self._workers = []
        self._wd = {"mode": None, "timeout": 0.0, "last": None}
        self._heap_event = threading.Event()
        self._heap_reply = None
        self._heap_modules = []
        self._restart = None
        self.t0 = None
        self._pins = {
            "next": _pin_number(values.get("PIN_BTN_NEXT", "IO4")),
            "enter": _pin_number(values.get("PIN_BTN_ENTER", "IO5")),
        }

    # -- the drive, the card, the nvm ----------------------------------------------------------
    def prepare(self):
        """Lay out CIRCUITPY from the release zip; make the SD image and nvm when missing."""
        zip_path = Path(self.release) if self.release else find_release()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.drive.exists():
            shutil.rmtree(self.drive)
        self.drive.mkdir()
        with zipfile.ZipFile(zip_path) as z:
            for info in z.infolist():
                parts = info.filename.split("/", 1)  # one top folder in the zip
                if len(parts) < 2 or not parts[1] or info.is_dir():
                    continue
                target = self.drive / parts[1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(info))
        for name, data in self.drive_files.items():  # tests: e.g. another code.py
            (self.drive / name).write_bytes(data.encode() if isinstance(data, str) else data)
        (self.drive / "sd").mkdir(exist_ok=True)  # CircuitPython makes /sd on a new drive
        (self.drive / "boot_out.txt").write_text(
            "Adafruit CircuitPython 10.3.0 on a board in a box; ESP32-S3 (box)\n"
            "Board ID:espressif_esp32s3_devkitc_1_n8r8\n"
        )
        # CircuitPython's getenv takes the FIRST line of a key: the overrides go first
        keys = set(self.extra)
        kept = [
            line
            for line in self.settings_text.splitlines()
            if line.split("=", 1)[0].strip() not in keys
        ]
        head = ["# set by board/run.py"] + [
            "%s = %s" % (k, toml_value(v)) for k, v in self.extra.items()
        ]
        text = "\n".join(head + kept) + "\n"
        (self.drive / "settings.toml").write_text(text, encoding="utf-8")
        if self.with_sd and not self.sd_image.exists():
            with open(self.sd_image, "wb") as f:
                f.truncate(SD_MB * 1024 * 1024)
            self._vm_tool("mkfs", str(self.sd_image))
        if self.sd_files:
            self.put_sd(self.sd_files)
        if self.nvm_bytes is not None:
            self.nvm.write_bytes(bytes(self.nvm_bytes).ljust(8192, b"\0")[:8192])
        elif not self.nvm.exists():
            self.nvm.write_bytes(bytes(8192))  # a never-written ESP32 nvm reads 0x00

    def put_sd(self, files):
        """Copy ``{"logs/2024-05-01.csv": bytes, ...}`` onto the card (the VM is not running)."""
        stage = self.data_dir / "sd-put"
        if stage.exists():
            shutil.rmtree(stage)
        for name, data in files.items():
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        self._vm_tool("put", str(self.sd_image), str(stage))
        shutil.rmtree(stage)

    def _vm_tool(self, *args):
        cmd = [self.vm, "-X", "heapsize=1M", str(HERE / "fatimage.py"), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError("fatimage %s: %s" % (args[0], done.stdout + done.stderr))
        return done.stdout

    def export_sd(self, dest=None):
        """Copy every file of the SD image to ``dest`` (default ``<data dir>/sd-export``)."""
        dest = Path(dest or self.data_dir / "sd-export")
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        self._vm_tool("export", str(self.sd_image), str(dest))
        return dest

    def rows(self, dest=None):
        """CSV rows on the FAT image (every line after each file's header)."""
        if not self.with_sd:
            return 0
        folder = self.export_sd(dest)
        log_dir = self.cfg.LOG_DIR
        base = folder / log_dir[len("/sd/") :] if log_dir.startswith("/sd/") else folder
        total = 0
        for path in sorted(base.rglob("*.csv")):
            lines = path.read_bytes().splitlines()
            total += max(0, len(lines) - 1)
        return total

    # -- running ---------------------------------------------------------------------------------
    def start(self):
        self.prepare()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(2)
        self.t0 = time.monotonic()
        self._boot("POWER_ON")
        for target in (self._meter_loop, self._supervise):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._workers.append(t)

    def screen(self, path=None):
        """The TFT as the user sees it now: the bytes the display driver sent since this boot,
        replayed into the panel model (board/panel.py); a Pillow image, saved to ``path``."""
        import importlib.util

        spec = importlib.util.spec_from_file_location("box_panel", HERE / "panel.py")
        panel = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(panel)
        img = panel.replay(str(self.display_wire)).image()
        if path:
            img.save(path)
        return img

    def board_time(self):
        """Board seconds since start (the box clock, ``speed`` times the host's)."""
        return (time.monotonic() - self.t0) * self.speed

    def _boot(self, reason):
        self.boots.append(reason)
        cfg = {
            "port": self._server.getsockname()[1],
            "drive": str(self.drive),
            "standins": str(STANDINS),
            "sd_image": str(self.sd_image) if self.with_sd else None,
            "nvm": str(self.nvm),
            "display_wire": str(self.display_wire),
            "speed": self.speed,
            "rtc_epoch": self.start_epoch + int(self.board_time()) if self.rtc_set else None,
            "reset_reason": reason,
            "meter_rx": _pin_number(self.values.get("PIN_METER_RX", "IO18")),
            "meter_tx": _pin_number(self.values.get("PIN_METER_TX", "")),
            "wifi": self.wifi,
        }
        cfg_path = self.data_dir / "box.json"
        cfg_path.write_text(json.dumps(cfg))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUITPY")}
        env.update(self.env)
        self.line = None
        self._wd = {"mode": None, "timeout": 0.0, "last": None}
        self._proc = subprocess.Popen(
            [self.vm, "-X", "heapsize=" + self.heap, str(STANDINS / "_boxboot.py"), str(cfg_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=str(self.data_dir),
            env=env,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, no locks
        )
        self._server.settimeout(30)
        conn, _ = self._server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        for target in (self._read_console, self._read_channel):
            threading.Thread(target=target, args=(self._proc, conn), daemon=True).start()

    def _read_console(self, proc, _conn):
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._lock:
                self.lines.append(line)
            if self.out is not None:
                print(line, file=self.out, flush=True)

    def _read_channel(self, proc, conn):
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 3:
                n = (buf[1] << 8) | buf[2]
                if len(buf) < 3 + n:
                    break
                kind, payload = buf[0:1], buf[3 : 3 + n]
                buf = buf[3 + n :]
                self._message(proc, kind, payload)

    def _message(self, proc, kind, payload):
        text = payload.decode("utf-8", "replace")
        if kind == b"L":
            if text == "off":
                self.line = None
            else:
                baud, parity = text.split()
                self.line = (int(baud), parity)
                if self.sent_before_uart is None:
                    self.sent_before_uart = self.meter.sent
        elif kind == b"T":
            with self._lock:
                self._tx += payload
        elif kind == b"O":
            self.overflow = int(text)
        elif kind == b"W":
            now = time.monotonic()
            wd = self._wd
            if text == "feed":
                if wd["last"] is not None:
                    gap = int((now - wd["last"]) * self.speed * 1000)
                    self.wd_gap_ms = max(self.wd_gap_ms, gap)
                wd["last"] = now
            else:
                _what, mode, timeout = text.split()
                wd["mode"] = None if mode == "None" else mode
                wd["timeout"] = float(timeout)
                wd["last"] = now
        elif kind == b"R":
            self._restart = (proc, "WATCHDOG" if text == "WATCHDOG" else "SOFTWARE")
        elif kind == b"S":
            m = re.match(r"boot heap free (\d+) alloc (\d+)", text)
            if m:
                self.boot_heap = (int(m.group(1)), int(m.group(2)))
            if text.startswith("module "):  # before the heap line of the same answer
                self._heap_modules.append(text[7:])
            m = re.match(r"heap free (\d+) live_free (\d+) alloc (\d+) standins (\d+)", text)
            if m:
                reply = dict(zip(("free", "live_free", "alloc", "standins"), map(int, m.groups())))
                reply["modules"] = sorted(self._heap_modules)
                self._heap_modules = []
                self._heap_reply = reply
                self._heap_event.set()
        elif kind == b"E":
            self.ended = text

    def _send(self, kind, payload):
        conn = self._conn
        if conn is None:
            return False
        try:
            for i in range(0, max(len(payload), 1), 65535):
                part = payload[i : i + 65535]
                conn.sendall(kind + bytes((len(part) >> 8, len(part) & 0xFF)) + part)
        except OSError:
            return False
        return True

    def _meter_loop(self):
        meter = self.meter
        interval = meter.interval_ms / 1000 / self.speed
        due = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < due:
                self._stop.wait(due - now)
                continue
            tick = due  # the meter stamps each telegram with its own tick, not when it is late
            due += interval
            if self.meter_waits and self.sent_before_uart is None:
                continue  # plugged in once the board's UART is up (tests: no first telegram lost)
            if self.telegram_limit is not None and self.sent >= self.telegram_limit:
                continue
            epoch = self.start_epoch + int((tick - self.t0) * self.speed)
            with self._lock:
                tx = bytes(self._tx)
                self._tx.clear()
            line = self.line
            before = meter.sent
            data = meter.send(epoch, tx)
            self.sent = meter.sent
            if line is not None and line != tuple(meter.line):
                self.sent_while_searching += meter.sent - before
            if data and line is not None:
                if line != tuple(meter.line):
                    data, _errors = resample(data, meter.line, line)
                self._send(b"U", bytes(data))

    def _supervise(self):
        """Resets and the watchdog: end the VM and start it again with the reason."""
        while not self._stop.is_set():
            time.sleep(0.05)
            proc = self._proc
            restart, self._restart = self._restart, None
            wd = self._wd
            if restart is None and wd["mode"] and wd["last"] is not None:
                starved = (time.monotonic() - wd["last"]) * self.speed
                if starved > wd["timeout"] > 0:
                    restart = (proc, "WATCHDOG")
            if restart is not None and restart[0] is proc and not self._stop.is_set():
                self._end_vm()
                self._boot(restart[1])

    def _end_vm(self):
        proc, self._proc = self._proc, None
        conn, self._conn = self._conn, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if conn is not None:
            conn.close()
        self.line = None

    def wait_for(self, text, timeout=30.0, start=0):
        """The first console line (from index ``start``) containing ``text``; TimeoutError."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                for line in self.lines[start:]:
                    if text in line:
                        return line
            if time.monotonic() > end:
                raise TimeoutError("no console line with %r in %.0f s" % (text, timeout))
            if self._proc is not None and self._proc.poll() is not None and self.ended:
                raise RuntimeError("code.py ended: %s" % self.ended)
            time.sleep(0.05)

    def run_until(self, done, timeout=60.0):
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() > end:
                raise TimeoutError("board: condition not met in %.0f s" % timeout)
            time.sleep(0.05)

    def serial_write(self, text):
        """Type ``text`` on the serial console."""
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            proc.stdin.write(text.encode())
            proc.stdin.flush()

    def wire(self, data):
        """Put ``data`` on the meter line as it is (the UART's line setting is not applied)."""
        return self._send(b"U", bytes(data))

    def press(self, key, hold_s=0.1):
        """Press and release a button: "next" or "enter"."""
        pin = self._pins[key]
        self._send(b"K", bytes((pin, 1)))
        time.sleep(hold_s)
        self._send(b"K", bytes((pin, 0)))

    def heap_now(self, timeout=10.0):
        """The VM's heap now: {"free", "live_free" (after a collection), "alloc", "standins"
        (what the display stand-ins hold; C in static memory on a board), "modules" (the
        firmware's and Adafruit's modules in ``sys.modules``, sorted)}. Answered when the
        firmware next reads the UART (the stand-ins pump the host channel then)."""
        self._heap_event.clear()
        self._heap_modules = []
        self._send(b"H", b"")
        if not self._heap_event.wait(timeout):
            raise TimeoutError("no heap answer from the VM in %.0f s" % timeout)
        return dict(self._heap_reply)

    def status(self, timeout=10.0):
        """The firmware's 'd' console dump, parsed: {counter: int}."""
        with self._lock:
            start = len(self.lines)
        self.serial_write("d")
        self.wait_for("  decoded ", timeout, start)
        time.sleep(0.3)  # the rest of the dump
        out = {}
        with self._lock:
            for line in self.lines[start:]:
                m = _COUNTER.match(line)
                if m:
                    out[m.group(1)] = int(m.group(2))
        return out

    def stop(self):
        self._stop.set()
        for t in self._workers:  # no restart after this
            t.join(5)
        self._end_vm()
        server = getattr(self, "_server", None)
        if server is not None:
            server.close()
            self._server = None

    def summary(self, counters, rows):
        c = counters
        text = "sent %d decoded %d logged %d uart_overflow %d longest_pass_ms %d wd_gap_ms %d" % (
            self.sent,
            c.get("decoded", 0),
            rows,
            self.overflow,
            c.get("slowest_pass_ms", 0),
            self.wd_gap_ms,
        )
        if c.get("line_switches"):
            text += " sent_while_searching %d" % self.sent_while_searching
        return text

    def banner(self):
        cfg = self.cfg
        port = self.values.get("WEB_PORT", cfg.WEB_PORT)
        return [
            "smartmeter board in a box: %s meter, telegram every %.1f s, heap %s, VM %s"
            % (self.meter.layout, self.meter.interval_ms / 1000 / self.speed, self.heap, self.vm),
            "CIRCUITPY drive: %s   SD card image: %s" % (self.drive, self.sd_image),
            "web: http://127.0.0.1:%s/  user %s  password %s"
            % (port, cfg.WEB_USER, self.values["WEB_PASSWORD"]),
            "keys: n = NEXT, e = ENTER; anything else goes to the serial console (d = status)",
        ]


def _keys_from_terminal(board, stop):
    """n / e press the buttons; other keys go to the serial console (a terminal only)."""
    if not sys.stdin.isatty():
        return None
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def loop():
        import select

        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            ch = os.read(fd, 1).decode("utf-8", "replace")
            if ch in ("n", "e"):
                board.press("next" if ch == "n" else "enter")
            else:
                board.serial_write(ch)

    threading.Thread(target=loop, daemon=True).start()
    return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="board/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--vm", default=os.environ.get("CIRCUITPYTHON"), help="the VM (CIRCUITPYTHON)")
    p.add_argument("--layout", default="netznoe", choices=meter_mod.layouts())
    p.add_argument("--duration", type=float, default=0, help="stop after S seconds (0 = never)")
    p.add_argument("--data-dir", default="board-data", help="drive, SD image and nvm live here")
    p.add_argument("--http-port", type=int, default=None, help="web port (default: WEB_PORT)")
    p.add_argument("--settings", default=str(REPO / "sim" / "settings.toml"))
    p.add_argument("--heap", default="2M", help="the VM's heap (-X heapsize), e.g. 192K, 2M")
    p.add_argument("--speed", type=int, default=1, help="the board clock runs N times faster")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--release", default=None, help="the release zip (default: newest in dist/)")
    p.add_argument("--release-dir", default=str(REPO / "dist"), help="where make release puts it")
    p.add_argument("--quiet", action="store_true", help="no console lines, summary only")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    reason = check_vm(args.vm)
    if reason:
        print("board: " + reason, file=sys.stderr)
        return 2
    board = Board(
        args.vm,
        data_dir=args.data_dir,
        settings_file=args.settings,
        layout=args.layout,
        heap=args.heap,
        speed=args.speed,
        http_port=args.http_port,
        seed=args.seed,
        release=args.release or find_release(args.release_dir),
        out=None if args.quiet else sys.stdout,
    )
    for line in board.banner():
        print(line, flush=True)
    stop = threading.Event()
    restore = None
    counters = {}
    try:
        board.start()
        restore = _keys_from_terminal(board, stop)
        end = time.monotonic() + args.duration if args.duration else None
        while end is None or time.monotonic() < end:
            if board.ended and board._proc is not None and board._proc.poll() is not None:
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if restore is not None:
            restore()
        try:
            if board._proc is not None and board._proc.poll() is None:
                board.telegram_limit = board.sent  # the meter stops; the last one is read
                time.sleep(1.0)
                counters = board.status()
        except (TimeoutError, RuntimeError, OSError) as exc:
            print("board: no status from the firmware (%s)" % exc, file=sys.stderr)
        board.stop()
    print(board.summary(counters, board.rows()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
