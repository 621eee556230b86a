"""``make bench``: speed and memory, measured (not asserted by timed tests).

Sections (``python -m bench [decode mpy loop ui web graphite usage memory board soak]``,
default all but soak):
  decode    CPython µs per telegram by stage, and ours vs the PyPI peers in interleaved rounds
  mpy       the same core under the real MicroPython VM: µs by stage, AES block primitive
            timed separately (native C on the device), bytes allocated per telegram, GHASH
  loop      super-loop pass time without a telegram and the cost of one telegram
  ui        display update time after a telegram, display-tree changes per telegram, time to
            switch to a screen (building it)
  web       download throughput vs Python's http.server, longest loop pause during a download
  graphite  bytes and connections per telegram vs the original firmware's scheme
  usage     the usage summary: µs per telegram, reading a period, save/load, CSV rebuild rate,
            and heap/time under the MicroPython VM
  ladder    the memory ladder in the CircuitPython VM (CIRCUITPYTHON=vm; board-ladder): the
            smallest fixed heap (16 KiB steps) at which each configuration logs 10 000 telegrams
            with 0 MemoryError, the stand-ins' own heap not counted (bench/board_ladder.py)
  board     the firmware inside the CircuitPython 10.3 VM (CIRCUITPYTHON=path): µs per
            telegram through the loop beside CPython and the MicroPython VM, and the heap the
            display stand-ins hold (C in static memory on a board)
  soak      (only when named) the release in the board in a box for 24 board hours at the
            PSRAM heap, web polled, MQTT and Graphite on: lost, MemoryError, free heap each
            hour, longest pass. ``soak --hours=0.5 --speed=20 --heap=2M``
  memory    heap per configuration (decode+CSV, +display, +web, +MQTT, +Graphite, everything)
            running the real loop in the MicroPython VM, from .mpy and from .py; then the heap
            each module of the decode + CSV boot path retains (one import per step)
"""

import os
import sys

SECTIONS = ("decode", "mpy", "loop", "ui", "web", "graphite", "usage", "memory", "ladder", "board")
ON_REQUEST = ("soak",)  # long: run only when named
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _out(text=""):
    print(text, flush=True)


def decode():
    from bench import decode_bench

    decode_bench.report(_out)


def mpy():
    import subprocess

    node = "node"
    runner = os.path.join(ROOT, "tests", "host", "mpy", "run.mjs")
    files = ["--file", "smartmeter", "--file", "drivers"]
    files += ["--file", "tests/vectors/real-frames.json=frames.json"]
    files += ["--file", "tests/vectors/austria-more.json=more.json"]
    cmd = [node, runner, *files, "--heapsize", "8m", "bench/mpy_decode.py"]
    _out("== MicroPython 1.27 VM (Netz NOE Kaifa capture, pure-Python AES backend) ==")
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
        )
    except FileNotFoundError:
        _out("node is not installed: skipped (make node_modules)")
        return
    _out(done.stdout.rstrip())
    if done.returncode:
        _out(done.stderr.rstrip())
    _out(
        "targets: <= 2048 bytes allocated, <= 1000 us excluding the AES block primitive, "
        "GHASH of 243 bytes <= 1000 us"
    )
    _out("-- heap retained by imports (.py sources, each group in a fresh VM) --")
    for group in ("boot", "csv", "graphite", "influx", "mqtt"):
        cmd = [node, runner, *files, "--heapsize", "8m", "bench/mpy_imports.py", group]
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
        _out((done.stdout or done.stderr).strip().splitlines()[-1])


def loop():
    from bench import loop_bench

    r = loop_bench.run()
    _out("== Super-loop on CPython (µs) ==")
    _out(
        "pass without telegram: median %.0f, max %.0f"
        % (r["idle_pass_us_median"], r["idle_pass_us_max"])
    )
    _out(
        "pass with a telegram:  median %.0f, max %.0f (decode + state + CSV row)"
        % (r["telegram_pass_us_median"], r["telegram_pass_us_max"])
    )
    _out("cost of one telegram:  %.0f" % r["telegram_cost_us"])


def ui():
    from bench import ui_bench

    _out("== Display (Blinka displayio + real ST7735R driver, PC) ==")
    for screen, r in ui_bench.run().items():
        _out(
            "%-12s update %.2f ms after a telegram, %d display-tree changes per telegram, "
            "switch to it %.1f ms"
            % (screen, r["update_ms_median"], r["changes_per_telegram"], r["switch_ms_median"])
        )


def web():
    from bench import web_bench

    r = web_bench.run()
    _out("== Web download on loopback ==")
    for key in sorted(r):
        _out("%s: %s" % (key, r[key] if not isinstance(r[key], float) else "%.2f" % r[key]))


def graphite():
    from bench import graphite_bench

    _out("== Graphite: bytes and connections per telegram ==")
    for scheme, r in graphite_bench.run().items():
        _out("%-22s %s" % (scheme, ", ".join("%s %s" % kv for kv in r.items())))


def usage():
    import shutil

    from bench import usage_bench

    r = usage_bench.run()
    _out("== Usage summary (CPython) ==")
    _out(
        "add(): %.2f us per telegram; period(): %.1f us; save %.0f us, load %.0f us (%d bytes)"
        % (r["add_us"], r["period_us"], r["save_us"], r["load_us"], r["file_bytes"])
    )
    _out(
        "quarter(): %.1f us; the telegram that closes a quarter: %.1f us"
        % (r["quarter_us"], r["quarter_close_us"])
    )
    _out(
        "rebuild from the CSV: %d rows at %.0f rows/s in %d loop passes"
        % (r["rebuild_rows"], r["rebuild_rows_per_s"], r["rebuild_passes"])
    )
    if shutil.which("node") is None:
        _out("node is not installed: MicroPython part skipped")
        return
    _out("-- MicroPython 1.27 VM --")
    for line in usage_bench.mpy():
        _out(line)


def memory():
    import shutil

    if shutil.which("node") is None:
        _out("node is not installed: memory section skipped (make node_modules)")
        return
    from bench import memory_bench

    memory_bench.report(_out)


def ladder():
    from bench import board_ladder

    board_ladder.report(_out)


def _vm():
    vm = os.environ.get("CIRCUITPYTHON", "")
    if vm and not os.path.isabs(vm):
        vm = os.path.join(ROOT, vm)
    if not (vm and os.path.isfile(vm) and os.access(vm, os.X_OK)):
        _out("CIRCUITPYTHON does not name the CircuitPython VM: skipped (README: Board in a box)")
        return None
    return vm


def board():
    import subprocess

    from bench import board_bench

    vm = _vm()
    _out("== The loop inside genuine CircuitPython: µs per telegram (decode, state, CSV row) ==")
    board_bench.report_loop(board_bench.loop_rows(vm), _out)
    if vm is None:
        return
    probe = (
        "import gc, board, busio, _box\ngc.collect()\na = gc.mem_alloc()\n"
        "import busdisplay, fourwire\ngc.collect()\n"
        "print(gc.mem_alloc() - a, busdisplay.heap_bytes())\n"
    )
    done = subprocess.run(
        [vm, "-X", "heapsize=2M", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, MICROPYPATH=os.path.join(ROOT, "board", "standins")),
        check=False,
    )
    outside, inside = done.stdout.split()[-2:]
    _out(
        "display stand-ins' code on the VM heap: %s bytes (heap_bytes() says %s; with a display "
        "built about 1.8 KB more; C in flash on a board)" % (outside, inside)
    )


def soak(options):
    from bench import board_bench

    vm = _vm()
    if vm is None:
        return
    hours = float(options.get("hours", 24))
    speed = int(options.get("speed", 20))
    heap = options.get("heap", "2M")
    _out(
        "== Soak: %.1f board hours at %s, one telegram a board second, clock x%d =="
        % (hours, heap, speed)
    )
    res = board_bench.soak(vm, hours=hours, speed=speed, heap=heap, out=_out)
    board_bench.report_soak(res, _out)


def main(argv):
    argv = ["ladder" if a == "board-ladder" else a for a in argv]
    options = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    wanted = [a for a in argv if a in SECTIONS or a in ON_REQUEST] or list(SECTIONS)
    for name in wanted:
        if name in ON_REQUEST:
            globals()[name](options)
        else:
            globals()[name]()
        _out()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
