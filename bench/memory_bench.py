"""Heap the firmware needs per configuration, measured in the MicroPython 1.27 VM (32-bit).

``python -m bench memory`` (part of ``make bench``). Each configuration runs the real firmware -
``smartmeter.app.build`` and ``App.loop_once`` - with fake hardware (UART fed with virtual-meter
telegrams, CSV files on the VM's file system, a socket pool whose web clients ask for
/api/status and the home page every fifth telegram, an MQTT broker that answers CONNECT/
SUBSCRIBE/PING, a Graphite server that takes everything) for 20 telegrams, once from the
release's ``.mpy`` files (compiled by tools/release.py, header set back to MicroPython's) and
once from ``.py`` sources. The display runs the real ``smartmeter.ui`` and the real
``adafruit_display_text`` on stand-ins for CircuitPython's C modules displayio, terminalio and
vectorio (bench/mpy_fakes/: each object holds what the C object holds on the board's heap, e.g.
a tile grid's tile indices); nothing is drawn.

Figures per step (bench/mpy_memory.mjs): the heap in use after garbage collection (``live``)
and the heap in use at the end of the step before collection (``peak``: everything the step
allocated counted as held at once - the VM reclaims nothing within a step). The minimum heap of
a configuration lies between its largest ``live`` and its largest ``peak``; a board needs that
plus room for fragmentation. Why not a fixed heap stepped down until MemoryError: this VM does
not fail an allocation, it adds heap (its total heap starts at 128 MiB plus ``--heapsize`` and
grows further), so a MemoryError cannot be provoked in it.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKES = ROOT / "bench" / "mpy_fakes"
KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
START_EPOCH = 1_714_557_600  # same as bench/mpy_memory.py
TELEGRAMS = 20

CONFIGS = [
    ("decode + CSV", "csv"),
    ("+ display", "csv+display"),
    ("+ web", "csv+web"),
    ("+ MQTT", "csv+mqtt"),
    ("+ Graphite", "csv+graphite"),
    ("+ InfluxDB", "csv+influx"),
    ("everything", "csv+display+web+mqtt+graphite+influx"),
]


def _have(module):
    return (ROOT / (module.replace(".", "/") + ".py")).is_file()


def available_configs():
    out = []
    for title, parts in CONFIGS:
        if "influx" in parts and not _have("smartmeter.outputs.influx"):
            if parts == "csv+influx":
                continue
            parts = parts.replace("+influx", "")
        out.append((title, parts))
    return out


def telegrams(n=TELEGRAMS):
    from sim.meter import VirtualMeter

    meter = VirtualMeter("netznoe", bytes.fromhex(KEY), None, seed=7)
    return [meter.telegram(START_EPOCH + 5 * i).hex() for i in range(n)]


def prepare(kind, dest):
    """Fill ``dest`` with the firmware, libraries and fakes; ``kind`` "mpy" or "py"."""
    sys.path.insert(0, str(ROOT / "tools"))
    import release

    binary = release.ensure_compiler(release.TARGETS["10"][0], Path(sys.prefix))

    def put(rel, data, compile_it):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if compile_it and rel.endswith(".py"):
            mpy = bytearray(release.mpy_cross(binary, data, rel))
            mpy[0] = ord("M")  # the VM is MicroPython: its loader wants 'M'
            (dest / (rel[:-3] + ".mpy")).write_bytes(bytes(mpy))
        else:
            target.write_bytes(data)

    for rel in release.firmware_sources():
        put(rel, (ROOT / rel).read_bytes(), kind == "mpy")
    for rel in release.firmware_assets():
        put(rel, (ROOT / rel).read_bytes(), False)
    for module, dist, version in release.device_libraries():
        for rel, path in release.library_files(module, dist, version):
            put(rel, path.read_bytes(), kind == "mpy")
    for path in sorted(FAKES.rglob("*.py")):  # stand-ins for C modules: never source
        put(path.relative_to(FAKES).as_posix(), path.read_bytes(), True)
    (dest / "telegrams.hex").write_text("\n".join(telegrams()) + "\n")


def run(parts, kind="mpy", n=TELEGRAMS, timeout=600, fail=(), first=()):
    """Run one configuration; return a dict of results (or raise RuntimeError).

    ``fail``: modules (``"outputs.mqtt"``) whose loading raises MemoryError in app.build.
    ``first``: modules imported one per step before the firmware's own imports.
    """
    with tempfile.TemporaryDirectory(prefix="membench-") as tmp:
        app = Path(tmp) / "app"
        app.mkdir()
        prepare(kind, app)
        cmd = ["node", str(ROOT / "bench" / "mpy_memory.mjs"), "--app", str(app)]
        cmd += [str(ROOT / "bench" / "mpy_memory.py"), parts, str(n), ",".join(fail) or "-"]
        cmd.append(",".join(first) or "-")
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    out = done.stdout
    m = re.search(r"RESULT peak (\d+) at (.+?) live (\d+) at (.+)$", out, re.M)
    if done.returncode or not m:
        raise RuntimeError("memory bench %s/%s failed:\n%s\n%s" % (parts, kind, out, done.stderr))
    steps = re.findall(r"^step (.+?)\s+before\s+(\d+) peak\s+(\d+) after\s+(\d+)$", out, re.M)
    decoded = re.search(r"^decoded (\d+) csv_rows (\d+) sinks (\d+)", out, re.M)
    left = re.search(r"^left_out (\S+)", out, re.M)
    web = re.search(r"^web_responses (\d+)", out, re.M)
    return {
        "left_out": [] if left.group(1) == "-" else left.group(1).split(","),
        "web_responses": int(web.group(1)),
        "base": int(steps[0][1]) if steps else 0,
        "peak": int(m.group(1)),
        "peak_step": m.group(2).strip(),
        "live": int(m.group(3)),
        "live_step": m.group(4).strip(),
        "decoded": int(decoded.group(1)),
        "csv_rows": int(decoded.group(2)),
        "sinks": int(decoded.group(3)),
        "steps": [(s[0].strip(), int(s[1]), int(s[2]), int(s[3])) for s in steps],
        "output": out,
    }


# What CircuitPython's C objects weigh on the board (32-bit, 16-byte GC blocks): the struct
# rounded up to 16 bytes plus separately allocated data (see bench/mpy_fakes/displayio.py).
C_SIZES = {
    "Group": 48 + 32,  # struct + member list (16) with room for 4 members (16)
    "Palette(1)": 16 + 16,
    "Palette(2)": 16 + 32,
    "Palette(3)": 16 + 48,
    "TileGrid 1x1": 96,  # the tile index lives in the struct
    "TileGrid 10x1": 96 + 16,
    "Bitmap 3x3 3 values": 48 + 16,  # 2 bits per pixel, rows of one 32-bit word: 12 bytes
    "Bitmap 30x14 3 values": 48 + 112,  # 60 bits -> 2 words per row
    "Bitmap 13x12 2 values": 48 + 48,  # 1 bit, 13 bits -> 1 word per row: 48 bytes
}


def object_sizes(timeout=300):
    """{name: bytes} each displayio stand-in and each kind of label holds in the VM's heap."""
    with tempfile.TemporaryDirectory(prefix="membench-") as tmp:
        app = Path(tmp) / "app"
        app.mkdir()
        prepare("mpy", app)
        cmd = ["node", str(ROOT / "bench" / "mpy_memory.mjs"), "--app", str(app)]
        cmd.append(str(ROOT / "bench" / "mpy_sizes.py"))
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    sizes = {
        m[0].strip(): int(m[1]) for m in re.findall(r"^size (.+?) (-?\d+)$", done.stdout, re.M)
    }
    if done.returncode or not sizes:
        raise RuntimeError("size probe failed:\n%s\n%s" % (done.stdout, done.stderr))
    return sizes


# The modules decode + CSV loads (app, config, the protocol, state, CSV logging, usage summary),
# dependencies first, so each one's figure is its own. ``hardware`` is what the board's
# device.py builds; ``build_info`` and the usage modules are loaded by app.build.
BOOT_MODULES = (
    "smartmeter.timeutil",
    "smartmeter.protocol.errors",
    "smartmeter.protocol.crypto",
    "smartmeter.protocol.reading",
    "smartmeter.protocol.axdr",
    "smartmeter.protocol.layouts",
    "smartmeter.linesearch",
    "smartmeter.config",
    "smartmeter.protocol.fastpath",
    "smartmeter.protocol.dlms",
    "smartmeter.protocol.hdlc",
    "smartmeter.protocol.transport",
    "smartmeter.protocol.pipeline",
    "smartmeter.state",
    "smartmeter.netutil",
    "smartmeter.datalog.sd",
    "smartmeter.datalog.csvformat",
    "smartmeter.datalog.csvlog",
    "smartmeter.build_info",
    "smartmeter.app",
    "smartmeter.hardware",
    "smartmeter.datalog.usage",
    "smartmeter.datalog.usagelog",
)


def module_costs(kind="mpy", modules=BOOT_MODULES):
    """[(module, bytes retained by its import)] in import order, and the run's results.

    Each module is imported in its own step (garbage collected between steps) before the
    decode + CSV configuration runs; its figure is the heap in use after its step minus before.
    The VM's string table grows in doubling chunks, so a module that happens to trigger the next
    chunk carries it (a few KiB): compare totals, not single small differences.
    """
    r = run("csv", kind, first=modules)
    n = len(modules)
    steps = r["steps"][: n + 1]  # the imports, then "core imports" (the heap after the last)
    assert [s[0] for s in steps] == ["import " + m for m in modules] + ["core imports"], steps
    costs = [(m, steps[i + 1][1] - steps[i][1]) for i, m in enumerate(modules)]
    return costs, r


def kib(n):
    return "%d KiB" % ((n + 1023) // 1024)


def report(out, kinds=("mpy", "py")):
    out("== Heap per configuration (MicroPython 1.27 VM, 32-bit; %d telegrams) ==" % TELEGRAMS)
    out("live = largest heap in use between steps (after collection): the minimum, before")
    out("fragmentation; peak = largest heap in use at the end of a step before collection")
    out("(all of the step's garbage still held): enough for sure. Both include ~24 KiB that the")
    out("VM and this bench hold before the firmware is imported.")
    header = "%-14s" % "configuration"
    for kind in kinds:
        header += " | %-24s" % (".%s live / peak" % kind)
    out(header + " | runs")
    for title, parts in available_configs():
        line = "%-14s" % title
        checks = ""
        for kind in kinds:
            r = run(parts, kind)
            line += " | %-24s" % ("%s / %s" % (kib(r["live"]), kib(r["peak"])))
            checks = "%d decoded, %d rows, %d sinks" % (r["decoded"], r["csv_rows"], r["sinks"])
        out(line + " | " + checks)
    out()
    out("-- heap retained per module, decode + CSV boot path (one import per step) --")
    results = {kind: module_costs(kind) for kind in kinds}
    costs = {kind: dict(results[kind][0]) for kind in kinds}
    out("%-30s" % "module" + "".join(" | %8s" % (".%s" % k) for k in kinds))
    for mod in sorted(BOOT_MODULES, key=lambda m: -costs[kinds[0]][m]):
        out("%-30s" % mod + "".join(" | %8d" % costs[k][mod] for k in kinds))
    out("%-30s" % "all of them" + "".join(" | %8d" % sum(costs[k].values()) for k in kinds))


if __name__ == "__main__":
    if os.environ.get("MEMBENCH_SHOW"):
        print(run(sys.argv[1] if len(sys.argv) > 1 else "csv", "mpy")["output"])
    else:
        report(print)
