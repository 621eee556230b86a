"""``make bench``: speed and memory, measured (not asserted by timed tests).

Sections (``python -m bench [decode mpy loop ui web graphite memory]``, default all):
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
  memory    heap per configuration (decode+CSV, +display, +web, +MQTT, +Graphite, everything)
            running the real loop in the MicroPython VM, from .mpy and from .py; then the heap
            each module of the decode + CSV boot path retains (one import per step)
"""

import os
import sys

SECTIONS = ("decode", "mpy", "loop", "ui", "web", "graphite", "usage", "memory", "ladder")
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


def main(argv):
    argv = ["ladder" if a == "board-ladder" else a for a in argv]
    wanted = [a for a in argv if a in SECTIONS] or list(SECTIONS)
    for name in wanted:
        globals()[name]()
        _out()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
