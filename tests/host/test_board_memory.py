"""The heap walk (issue 17): the release in the CircuitPython VM at fixed heaps from 96 to 256 KiB
in 16 KiB steps, decode + CSV (a board without WiFi and display), a few telegrams per step.

At every step: every telegram the meter sent is a row on the FAT image, or the console says
"CSV logging off: not enough memory" - never rows lost while nothing says so (at 160 KiB the
VM once logged 0 of 2000 rows and said nothing). And the board never reset itself on the way
(a watchdog starved while the message shows, a "fatal" error from a UART that could not be
rebuilt). The stand-ins' own heap (bench/board_ladder.standin_heap) is added to each step, so
the step is the board's heap. The long form (10 000 telegrams per configuration) is the ladder
in ``make bench`` (bench/board_ladder.py).

Runs when ``CIRCUITPYTHON`` names the VM (``.ci/run`` passes it); without it the test skips
with that reason, so a fresh clone stays green.
"""

from __future__ import annotations

import subprocess

import pytest
from _support import REPO_ROOT
from test_board_system import VM, build_release, pytestmark  # noqa: F401 - skips without the VM

from bench import board_ladder

HEAPS_KIB = range(96, 257, 16)
TELEGRAMS = 12
CSV_OFF = "CSV logging off: not enough memory"


def run_in_vm(script, heap):
    """Run ``script`` (a path) in the VM at heap ``heap`` ("256K") with the repository's
    modules from source on MICROPYPATH; the finished process (stdout, stderr as text)."""
    return subprocess.run(
        [VM, "-X", "heapsize=" + heap, str(script)],
        env={"MICROPYPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_heap_logs_every_row_or_says_csv_logging_off(tmp_path):
    release = build_release(tmp_path)
    config = board_ladder.CONFIGS[0]  # decode + CSV
    assert config[0] == "decode + CSV"
    standin, notes = board_ladder.standin_heap(VM, False, False, tmp_path / "w", release)
    assert 0 < standin < 128 * 1024, notes
    walk = []
    for heap in HEAPS_KIB:
        r = board_ladder.run(
            VM, config, heap, TELEGRAMS, tmp_path / "w", standin, release=release, watchdog_s=60
        )
        said = r["csv_off"]
        all_rows = r["expected"] > 0 and r["rows"] >= r["expected"]
        walk.append((heap, r["rows"], r["expected"], said, len(r["boots"]), r["seconds"]))
        detail = "\n".join(r["lines"][-30:])
        assert all_rows or said, "%d KiB: %d of %d rows, nothing said\n%s" % (
            heap,
            r["rows"],
            r["expected"],
            detail,
        )
        assert r["boots"] == ["POWER_ON"], "%d KiB: the board reset: %s\n%s" % (
            heap,
            r["boots"],
            detail,
        )
        assert not r["ended"], "%d KiB: code.py ended: %s\n%s" % (heap, r["ended"], detail)
    print("\nheap walk, decode + CSV (KiB, rows, sent, said CSV logging off, boots, s):")
    for step in walk:
        print("  %3d KiB  %3d of %3d rows  %-5s  %d  %.1f" % step)
    # the walk reaches a heap where everything is logged (the ladder's goal is 160 KiB)
    assert any(rows >= sent > 0 for _h, rows, sent, _s, _b, _t in walk), walk


DISPLAY_GOAL_KIB = 192  # the ladder's goal for decode + CSV + display


def test_a_display_board_runs_in_192_kib_with_usage_and_cost(tmp_path):
    # The ladder's goal for decode + CSV + display, short form (the long one, 10 000 telegrams,
    # is `make bench`): at 192 KiB every row, the display and usage and cost on, nothing left
    # out, 0 MemoryError. Boot work has left the heap: the settings' reader (config, overrides:
    # a board without WiFi has no settings page), the hardware build (device) and the parts'
    # table (assemble).
    release = build_release(tmp_path)
    config = board_ladder.CONFIGS[1]
    assert config[0] == "+ display"
    standin, notes = board_ladder.standin_heap(VM, True, False, tmp_path / "w", release)
    r = board_ladder.run(
        VM, config, DISPLAY_GOAL_KIB, 40, tmp_path / "w", standin, release=release, heap_probe=True
    )
    detail = "\n".join(x for x in r["lines"] if " | " not in x)
    assert r["expected"] > 0 and r["rows"] >= r["expected"], detail
    assert r["boots"] == ["POWER_ON"] and not r["ended"], detail
    assert r["left_out"] == [] and not r["memory"], detail
    modules = r["heap_now"]["modules"]
    assert "smartmeter.ui.screens" in modules and "smartmeter.datalog.usage" in modules
    for gone in ("config", "overrides", "device", "assemble"):
        assert "smartmeter." + gone not in modules, modules
    print(
        "\n%d KiB, decode + CSV + display, usage and cost: %d of %d rows, board heap %d B"
        % (DISPLAY_GOAL_KIB, r["rows"], r["expected"], r["heap_now"]["alloc"] - standin)
    )


# Put before a VM script: ``keep = fragment(size, pairs)`` leaves a heap as after hours of
# running, much free and no free piece larger than ``size`` bytes: pairs of blocks until the
# heap is full (or ``pairs`` of them), then every second one freed. The lists are made at their
# size and stay (a list that grows, or one freed, would leave a larger hole).
FRAGMENT_HEAP = """
import gc


def fragment(size, pairs=0):
    gc.collect()
    pairs = pairs or gc.mem_free() // (2 * size) + 1
    keep = [None] * pairs
    junk = [None] * pairs
    try:
        for i in range(pairs):
            keep[i] = bytearray(size)
            junk[i] = bytearray(size)
    except MemoryError:
        pass
    for i in range(pairs):
        junk[i] = None
    gc.collect()
    print("free", gc.mem_free())
    return keep
"""


FRAGMENTED_SAVE = """
import gc
import os
from smartmeter.datalog.usage import Tariff, Usage
from smartmeter.config import OVERRIDE_DIR
from smartmeter.overrides import write_private

class Fs:
    def stat(self, path):
        return os.stat(PATH + path)
    def mkdir(self, path):
        os.mkdir(PATH + path)
    def open(self, path, mode):
        return open(PATH + path, mode)

u = Usage(Tariff(30000, 8000))
for i in range(3000):
    u.add(1714557600 + 60 * i, 1000000 + 7 * i, 5000 + i)
SAVE = %s
keep = fragment(200)  # much free, none of it in 9 KiB pieces
SAVE()
print("saved")
"""


@pytest.mark.parametrize("how", ["pieces", "one_buffer"])
def test_the_hourly_usage_save_fits_a_fragmented_heap(tmp_path, how):
    """The usage summary (8968 bytes) is saved every hour. Built as one bytes object it needs a
    block of its size - on a heap fragmented by hours of running there is none, though much is
    free (the VM: 'allocating 8969 bytes' with 79 KiB free, and a part was shed for it). Written
    piece by piece (``to_pieces``, the board's way) it needs none."""
    save = {
        "pieces": "lambda: write_private(Fs(), OVERRIDE_DIR + '/usage-a.bin', u.to_pieces())",
        "one_buffer": "lambda: b''.join(bytes(p) for p in u.to_pieces())",  # usagefile.to_bytes
    }[how]
    from smartmeter.config import OVERRIDE_DIR

    (tmp_path / OVERRIDE_DIR.strip("/")).parent.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "save.py"
    script.write_text(("PATH = %r\n" % str(tmp_path)) + FRAGMENT_HEAP + FRAGMENTED_SAVE % save)
    done = run_in_vm(script, "256K")
    out = done.stdout + done.stderr
    free = int(out.split("free ")[1].split()[0])
    assert free > 40_000, out  # much is free...
    if how == "pieces":
        assert "saved" in out, out
        data = (tmp_path / OVERRIDE_DIR.strip("/") / "usage-a.bin").read_bytes()
        assert len(data) == 8968
    else:  # ...but not 9 KiB in one piece: the old way fails there
        assert "MemoryError" in out and "saved" not in out, out


USAGE_LOAD = """
import gc
import os
import sys


class Dev:
    # the card: a FAT image on the host in 512-byte blocks, under os.VfsFat as on the board
    def __init__(self, path):
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.n = self.f.tell() // 512
    def readblocks(self, b, buf):
        self.f.seek(b * 512)
        self.f.readinto(buf)
    def writeblocks(self, b, buf):
        self.f.seek(b * 512)
        self.f.write(buf)
    def ioctl(self, op, arg):
        return self.n if op == 4 else 512 if op == 5 else 0


dev = Dev(IMAGE)
os.VfsFat.mkfs(dev)
os.mount(os.VfsFat(dev), "/sd")

from smartmeter.datalog.sd import RealFS
from smartmeter.datalog.usage import Tariff
from smartmeter.datalog.usagelog import UsageSink


class State:
    usage = None
    last_errors = {}


class Storage:
    state = "ok"
    fs = RealFS()
    def log_files(self):
        return []


sink = UsageSink(State(), None, Tariff(30000, 8000))
u = sink.usage
sink.storage = Storage()
sink._ready = True
for i in range(3000):
    u.add(1714557600 + 60 * i, 1000000 + 7 * i, 5000 + i)
sink.save()
u.add(1714557600 + 60 * 3000, 1000000 + 7 * 3000, 5000 + 3000)
sink.save()  # both slots written; the second is the newer
day = u.day_key(1714557600 + 86400)
want = (u.seq, u.period(u.days, day), u.quarter((1714557600 + 60 * 2999) // 900))
arrays = [id(r.data) for r in (u.quarters, u.hours, u.days, u.months)]


def load():
    u.clear()
    u.seq = 0
    sink.start()
    got = (u.seq, u.period(u.days, day), u.quarter((1714557600 + 60 * 2999) // 900))
    assert got == want, (got, want)
    assert sink.loaded_from == "usage-b.bin", sink.loaded_from


gc.collect()
gc.disable()  # no collection: what start() allocates in all (an upper bound of its peak)
before = gc.mem_alloc()
load()
print("allocated", gc.mem_alloc() - before)
gc.enable()
same = [id(r.data) for r in (u.quarters, u.hours, u.days, u.months)] == arrays
print("loaded into its own arrays", same)
keep = fragment(200)  # much free, none of it in pieces over 200 bytes
load()
print("loaded in a fragmented heap")
print("code loaded", [n for n in sys.modules if n.endswith((".usagefile", ".market"))])
# a file of an older version is read whole (usagefile), once: then the module leaves the heap
keep = junk = None
gc.collect()
from smartmeter.datalog.usagefile import load_whole

f = open("/sd/.smartmeter/usage-b.bin", "rb")
load_whole(u, f)
f.close()
print("whole", u.period(u.days, day) == want[1], "smartmeter.datalog.usagefile" in sys.modules,
      hasattr(sys.modules["smartmeter.datalog"], "usagefile"))
"""


def test_loading_the_usage_summary_from_the_card_needs_little_beyond_the_summary(tmp_path):
    """At every boot with usage files on the card the summary is loaded. Read whole (9 KB, a
    copy of it, then a new 5.6 KB quarter array while the old one lives) it allocated about
    40 KB and needed a 9 KB block: after hours of running (a reboot with files on the card)
    the heap has the room in all but not in one piece ("allocating 8970 bytes" with 75 KB
    free). Read piece by piece into the rings' own arrays (``Usage.load``) it allocates less
    than 4 KB (file objects, the header, small ints made long) and loads in that heap."""
    image = tmp_path / "sd.img"
    image.write_bytes(bytes(1024 * 1024))
    script = tmp_path / "load.py"
    script.write_text(("IMAGE = %r\n" % str(image)) + FRAGMENT_HEAP + USAGE_LOAD)
    done = run_in_vm(script, "256K")
    out = done.stdout + done.stderr
    assert "allocated" in out, out
    allocated = int(out.split("allocated ")[1].split()[0])
    assert allocated < 6144, out
    assert "loaded into its own arrays True" in out, out
    free = int(out.split("free ")[1].split()[0])
    assert free > 40_000, out  # much is free, in small pieces
    assert "loaded in a fragmented heap" in out, out
    # neither the day-ahead prices' code nor the whole-file code for older versions came along
    assert "code loaded []" in out, out
    # read whole (an older version's file, once after an update), its code leaves the heap
    assert "whole True False False" in out, out
    print("usage load: %d bytes allocated; loaded with %d bytes free in pieces" % (allocated, free))


CSV_READ = """
import gc
from smartmeter.datalog import csvformat
from smartmeter.datalog.sd import RealFS

fs = RealFS(root=ROOT)
size = getattr(csvformat, "ROWS_BUF", None)
buf = bytearray(size) if size else None  # the replay's one buffer, made when it starts


def rows():
    if buf is None:
        return csvformat.read_rows(fs, "/d.csv", 0, True)
    return csvformat.read_rows(fs, "/d.csv", 0, True, buf)


if MODE == "count":
    gc.collect()
    gc.disable()  # no collection: what reading the file allocates in all
    before = gc.mem_alloc()
    n = 0
    for row in rows():
        n += 1
    print("rows", n, "allocated", gc.mem_alloc() - before)
else:
    keep = fragment(512, 400)  # much free, no piece of it over about 530 bytes
    n = 0
    a_plus = 0
    for epoch, values, end in rows():
        n += 1
        a_plus = values.get("1-0:1.8.0")
    print("read in a fragmented heap", n, a_plus)
"""


def test_the_usage_replay_reads_the_csv_in_a_fragmented_heap(tmp_path):
    """The usage replay reads day files row by row. A new 1 KiB chunk per read (and ``carry +
    chunk``) needed 1 KiB blocks: in the VM's display configuration at 228 KiB a pass failed
    "allocating 1025 bytes" with 12 KB free in no piece over 640 B. Read into one buffer made
    when the replay starts (``read_rows(..., buf)``), a row needs only small blocks: the file
    reads whole in a heap whose free pieces are about 530 bytes."""
    import sys

    sys.path.insert(0, str(REPO_ROOT / "tests" / "host"))
    from test_csvlog import EXTRAS, LOG, kaifa, make, step

    fs, _st, log = make(dialect="excel-de")
    for i in range(600):
        assert log.write(kaifa(step((2024, 5, 2, 0, 0, 0), 5 * i), a_plus=1000 + i), None, EXTRAS)
    (tmp_path / "d.csv").write_bytes(fs.content(LOG + "/2024-05-02.csv"))
    out = {}
    for mode, heap in (("count", "2M"), ("fragmented", "192K")):
        script = tmp_path / (mode + ".py")
        script.write_text(
            ("ROOT = %r\nMODE = %r\n" % (str(tmp_path), mode)) + FRAGMENT_HEAP + CSV_READ
        )
        done = run_in_vm(script, heap)
        out[mode] = done.stdout + done.stderr
    assert "rows 600 allocated" in out["count"], out
    allocated = int(out["count"].split("allocated ")[1].split()[0])
    free = int(out["fragmented"].split("free ")[1].split()[0])
    assert free > 40_000, out  # much is free, in small pieces
    assert "read in a fragmented heap 600 1599" in out["fragmented"], out
    print("read_rows: %d bytes a row; read with %d bytes free in pieces" % (allocated // 600, free))


LIST_DAYS = """
import gc
from smartmeter.datalog.sd import RealFS, Storage


class Clock:
    def ticks_ms(self):
        return 0


st = Storage(RealFS(root=ROOT), log_dir="/logs", clock=Clock())
gc.collect()
gc.disable()  # no collection: what one listing allocates in all
before = gc.mem_alloc()
names = st.log_files()
print("listed", len(names), "allocated", gc.mem_alloc() - before)
print("in order", names == sorted(names) and names[0] == "2024-01-01.csv")
"""


def test_listing_a_year_of_day_files_allocates_little_more_than_the_names(tmp_path):
    """The usage replay lists the day files at every boot (retention, the Files page too).
    Sorted with ``key=log_order`` MicroPython calls the key at every comparison, and its
    quicksort makes about n * n / 2 comparisons on names already in order (as FAT lists them):
    400 day files allocated 6.5 MB of keys (in the VM 76 ms; on the board seconds). Sorted
    plain (the few days with parts by key) and checked without slices, a listing allocates
    about what the names take."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for d in range(400):
        (logs / ("%04d-%02d-%02d.csv" % (2024 + d // 336, 1 + d % 336 // 28, 1 + d % 28))).touch()
    script = tmp_path / "list.py"
    script.write_text(("ROOT = %r\n" % str(tmp_path)) + LIST_DAYS)
    done = run_in_vm(script, "1M")
    out = done.stdout + done.stderr
    assert "listed 400 allocated" in out, out
    allocated = int(out.split("allocated ")[1].split()[0])
    assert allocated < 48_000, out
    assert "in order True" in out, out
    print("listing 400 day files: %d bytes allocated" % allocated)


CATCH_UP = """
import gc
from smartmeter.datalog.sd import RealFS, Storage
from smartmeter.datalog.usage import Tariff
from smartmeter.datalog.usagelog import UsageSink


class Clock:
    def ticks_ms(self):
        return 0


class State:
    usage = None
    last_errors = {}


st = Storage(RealFS(root=ROOT), log_dir="/sd/logs", clock=Clock())
st.begin()
sink = UsageSink(State(), None, Tariff())
sink.storage = st
sink._ready = True
sink.usage.add(1741392000, 1000, 0)  # 2025-03-08 00:00 UTC, the newest day file's date
sink.usage.add(1741392060, 1001, 0)
sink.save()
sink = None
gc.collect()
sink = UsageSink(State(), None, Tariff())  # the reboot
sink.storage = st
sink.start()
if FRAGMENT:  # the rest of the boot leaves much free, no piece of it over about 530 bytes
    keep = fragment(512, 2000)
gc.collect()
before = gc.mem_alloc()
sink.poll()  # the first slice of the catch-up
gc.collect()
print("loaded", sink.loaded_from, "replaying", sink.replaying, "held", gc.mem_alloc() - before)
while sink.replaying:
    sink.poll()
print("replayed", sink.replayed)
"""


def _catch_up(tmp_path, fragment, days=400):
    logs = tmp_path / "sd" / "logs"
    logs.mkdir(parents=True)
    head = b"Zeit;UTC-Offset;A+ Wh\r\n"
    for d in range(400 - days, 400):
        name = "%04d-%02d-%02d.csv" % (2024 + d // 336, 1 + d % 336 // 28, 1 + d % 28)
        (logs / name).write_bytes(head)
    rows = []
    for i in range(1000):  # the newest day: more rows than a slice replays
        s = 3600 + 10 * i
        rows.append(
            b"08.03.2025 %02d:%02d:%02d;+01:00;%d\r\n" % (s // 3600, s // 60 % 60, s % 60, 1002 + i)
        )
    assert name == "2025-03-08.csv"
    (logs / name).write_bytes(head + b"".join(rows))
    script = tmp_path / "catchup.py"
    script.write_text(
        ("ROOT = %r\nFRAGMENT = %r\n" % (str(tmp_path), fragment)) + FRAGMENT_HEAP + CATCH_UP
    )
    done = run_in_vm(script, "1M")
    return done.stdout + done.stderr


def test_the_catch_up_after_a_reboot_holds_only_the_names_it_reads(tmp_path):
    """After a reboot the replay reads the day files since the summary's last telegram (a day
    or two), but held the names of all day files on the card while it ran: a year of them
    (400) about 15 KB of heap for the whole catch-up. It keeps only the names it reads."""
    out = _catch_up(tmp_path, False)
    assert "loaded usage-a.bin replaying True held" in out, out
    held = int(out.split("held ")[1].split()[0])
    assert held < 6000, out
    assert "replayed 1000" in out, out
    print("catch-up over 400 day files: %d bytes held after a slice" % held)


def test_the_catch_up_runs_in_a_heap_fragmented_after_start_up(tmp_path):
    """The replay's 1 KiB read buffer is made at start-up (the summary's load), not at its first
    slice: later in the boot the heap may have no 1 KiB in one piece (the VM's display ladder
    failed "allocating 1024 bytes" with 9.5 KB free at 216 KiB, and usage and cost went off)."""
    out = _catch_up(tmp_path, True, 40)  # 40 day files: listing 400 needs 2 KiB blocks (lists)
    free = int(out.split("free ")[1].split()[0])
    assert free > 200_000, out  # much is free, in small pieces
    assert "replayed 1000" in out, out
