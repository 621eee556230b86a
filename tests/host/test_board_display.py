# SPDX-License-Identifier: MIT
"""The TFT inside genuine CircuitPython: the screens drawn by the VM's real displayio objects
through the real adafruit_st7735r driver and the board in a box's ``busdisplay``/``fourwire``
stand-ins, rebuilt from the bytes on the wire by a model of the panel (board/panel.py), equal
the simulator's pictures (Blinka displayio, sim/display.py) pixel for pixel.

Runs when ``CIRCUITPYTHON`` names the board-like VM (``.ci/run`` passes it when it has one);
skips otherwise, so a fresh clone stays green.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from PIL import Image, ImageChops  # noqa: E402

from sim import screens as S  # noqa: E402

STANDINS = os.path.join(ROOT, "board", "standins")
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
from test_board_system import VM, pytestmark  # noqa: E402,F401 - skips without the VM


def _panel_module():
    spec = importlib.util.spec_from_file_location(
        "box_panel", os.path.join(ROOT, "board", "panel.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


panel = _panel_module()

# every golden case, plus a telegram that changes a few values (an incremental refresh)
CASES = sorted({(lang, sc, scr) for lang in S.LANGUAGES for sc, scr in S.cases()})


def run_vm(tmp, script, heap="2M", timeout=300):
    """Run ``script`` in the VM with the stand-ins and the real driver; returns stdout."""
    lib = os.path.join(tmp, "lib")
    os.makedirs(lib, exist_ok=True)
    spec = importlib.util.find_spec("adafruit_st7735r")  # 2.0.5, the version the release pins
    shutil.copy(spec.origin, lib)
    path = os.path.join(tmp, "script.py")
    with open(path, "w") as f:
        f.write(script)
    env = dict(os.environ, MICROPYPATH="%s:%s" % (STANDINS, lib))
    res = subprocess.run(
        [VM, "-X", "heapsize=" + heap, path],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


PRELUDE = """
import sys, gc
import _box  # loaded by the box's boot before code.py (not part of the display stand-ins)
sys.path.append(%(root)r)
import fourwire, busdisplay, _busdisplay, _fourwire
_busdisplay.INIT_DELAYS = False
_fourwire.WIRE_PATH = %(wire)r
import board, busio
from adafruit_st7735r import ST7735R

# exactly as smartmeter/device.py _display() builds it, on the default pins (smartmeter/config.py)
spi = busio.SPI(clock=board.IO12, MOSI=board.IO11)
bus = fourwire.FourWire(
    spi, command=board.IO9, chip_select=board.IO10, reset=board.IO13, baudrate=24000000
)
display = ST7735R(bus, width=160, height=128, rotation=90, bgr=True, backlight_pin=board.IO14)
"""

SCREENS = """
import json
from sim import screens as S
with open(%(inputs)r) as f:
    S.usage_month(inputs=json.load(f))  # the same usage data as the simulator's (double floats)
from smartmeter.ui.control import Ui
from smartmeter.protocol import reading as r
with open(%(cases)r) as f:  # from a file: as a literal its names would be interned at compile
    cases = json.load(f)  # time, and the qstr pools' growth would change the heap measured below
for lang in S.LANGUAGES:
    ui = Ui(display, None, S.normal(), language=lang)
    for l, scenario, screen in cases:
        if l != lang:
            continue
        S.render(ui, scenario, screen)
        bus._mark("%%s-%%s-%%s" %% (lang, scenario, screen))
# a new telegram on the power screen: only what changed goes over the wire
ui = Ui(display, None, S.normal(), language="de")
ui.goto("power")
ui.poll(S.NOW_MS)
before = display.areas_sent
bus._mark("before")
rd = S._reading(dict(S.NORMAL_VALUES, **{r.P_PLUS: 1234}))
ui.state.latest = rd
ui.state.counters.decoded += 1
ui.poll(S.NOW_MS + 1000)
bus._mark("after")
print("AREAS", before, display.areas_sent)
print("HEAP", busdisplay.heap_bytes())
"""


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("boxdisplay"))
    wire = os.path.join(tmp, "wire.bin")
    inputs = os.path.join(tmp, "usage.json")
    with open(inputs, "w") as f:
        json.dump(S.usage_inputs(), f)
    cases = os.path.join(tmp, "cases.json")
    with open(cases, "w") as f:
        json.dump(CASES, f)
    script = PRELUDE % {"root": ROOT, "wire": wire} + SCREENS % {"cases": cases, "inputs": inputs}
    out = run_vm(tmp, script)
    p = panel.replay(wire)
    info = dict(line.split(" ", 1) for line in out.splitlines() if line[:4] in ("AREA", "HEAP"))
    return p, info, wire


@pytest.fixture(scope="module")
def sim_display():
    from sim.display import make_png_display

    return make_png_display()


def sim_picture(sim_display, lang, scenario, screen, state=None):
    from smartmeter.ui.control import Ui

    display, snapshot = sim_display
    ui = Ui(display, None, S.normal(), language=lang)
    S.render(ui, scenario, screen)
    if state is not None:
        state(ui)
    return snapshot()


def differing(a, b):
    return sum(1 for v in ImageChops.difference(a, b).convert("L").tobytes() if v)


@pytest.mark.parametrize("lang,scenario,screen", CASES)
def test_board_pixels_equal_simulator(frames, sim_display, lang, scenario, screen):
    """The picture rebuilt from the wire equals the simulator's, pixel for pixel."""
    p = frames[0]
    name = "%s-%s-%s" % (lang, scenario, screen)
    got = p.image(p.frames[name])
    want = sim_picture(sim_display, lang, scenario, screen)
    n = differing(got, want)
    if n:
        got.save(os.path.join(os.path.dirname(frames[2]), name + "-board.png"))
        want.save(os.path.join(os.path.dirname(frames[2]), name + "-sim.png"))
    assert n == 0, "%s: %d pixels differ (pictures next to %s)" % (name, n, frames[2])


def test_golden_images_match_the_board(frames):
    """The committed golden PNGs (made by the simulator) hold for the board's pictures too."""
    p = frames[0]
    checked = 0
    for f in sorted(os.listdir(GOLDEN)):
        name = f[:-4]
        if name not in p.frames:
            continue
        want = Image.open(os.path.join(GOLDEN, f)).convert("RGB")
        assert differing(p.image(p.frames[name]), want) <= 0.005 * 160 * 128, name
        checked += 1
    assert checked >= 20


def test_incremental_refresh_sends_only_the_change_and_stays_right(frames, sim_display):
    from smartmeter.protocol import reading as r

    p, info, _ = frames
    before, after = (int(v) for v in info["AREAS"].split())
    full = 80  # 160 rows of 128 pixels, 2 rows (512 bytes) per area
    assert 0 < after - before < full / 2
    assert p.frames["before"] != p.frames["after"]

    def telegram(ui):
        ui.state.latest = S._reading(dict(S.NORMAL_VALUES, **{r.P_PLUS: 1234}))
        ui.state.counters.decoded += 1
        ui.poll(S.NOW_MS + 1000)

    want = sim_picture(sim_display, "de", "normal", "power", telegram)
    assert differing(p.image(p.frames["after"]), want) == 0


def test_wire_carries_the_driver_init_sequence_and_windows(frames):
    """What the stand-ins put on the wire is what the driver asked for (BusDisplay.c)."""
    p, _, wire = frames
    # a fresh copy of the driver: its constructor appends to the module's bytearray each time
    spec = importlib.util.find_spec("adafruit_st7735r")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    seq = driver._INIT_SEQUENCE + b"\x36\x01\xc0"  # bgr=True
    want = []
    i = 0
    while i < len(seq):
        want.append(seq[i])
        n = seq[i + 1]
        i += 2 + (n & 0x7F) + (1 if n & 0x80 else 0)
    assert p.commands[: len(want)] == want
    assert p.madctl == 0xC0 and p.colmod == 0x05 and p.display_on and not p.sleeping
    assert p.resets == 1  # the reset pin pulsed once by FourWire's constructor
    assert p.backlight == 255
    # after the init sequence only window + RAM writes
    rest = p.commands[len(want) :]
    assert rest[:3] == [0x2A, 0x2B, 0x2C]
    assert set(rest) == {0x2A, 0x2B, 0x2C}


def test_stand_in_heap_is_measured(frames, tmp_path):
    """heap_bytes() is what importing and building the display stand-ins holds on the VM heap
    (measured here from outside), so memory figures can subtract it."""
    out = run_vm(
        str(tmp_path),
        # what the box has loaded before the firmware builds its display
        "import gc, board, busio, microcontroller, _box\ngc.collect()\na = gc.mem_alloc()\n"
        + (PRELUDE % {"root": ROOT, "wire": ""}).replace(
            "from adafruit_st7735r", "import adafruit_st7735r\nfrom adafruit_st7735r"
        )
        + "\ndel ST7735R\nsys.modules.pop('adafruit_st7735r')\nsys.path.pop()\ngc.collect()\n"
        "import busdisplay\nprint(gc.mem_alloc() - a, busdisplay.heap_bytes())\n",
    )
    outside, inside = (int(v) for v in out.split()[-2:])
    assert inside > 8000  # the stand-ins' code and objects: several KB on the VM heap
    # not counted inside: the shims themselves and interned names (qstr pools grow in chunks);
    # the GC scans the C stack conservatively, so inside may also come out a little higher
    assert -1000 <= outside - inside < 4000, (outside, inside)
    reported = int(frames[1]["HEAP"])
    # the interned names of the stand-ins land in qstr pools that grow in chunks: whether a
    # chunk is made during their import depends on what was compiled before (+-2.5 KB),
    # and the GC scans the C stack conservatively
    assert abs(reported - inside) < 4000


def test_refresh_allocates_next_to_nothing(tmp_path):
    """Rendering runs in Python here but in C on a board: it must not hold heap or churn it."""
    script = PRELUDE % {"root": ROOT, "wire": ""} + (
        "from sim import screens as S\nfrom smartmeter.ui.control import Ui\n"
        "ui = Ui(display, None, S.normal(), language='de')\nS.render(ui, 'normal', 'phases')\n"
        "display.refresh()\ngc.collect()\na = gc.mem_alloc()\n"
        "display._full = True\ndisplay.refresh()\nb = gc.mem_alloc()\ngc.collect()\n"
        "print(b - a, gc.mem_alloc() - a)\n"
    )
    churn, held = (int(v) for v in run_vm(str(tmp_path), script).split()[-2:])
    assert held <= 0, held
    assert churn < 8192, churn  # CRCs are long ints: about 50 bytes per area, 80 areas


BEHAVIOUR = """
import displayio
def err(fn):
    try:
        fn()
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)
    return "ok"
print("R", err(lambda: ST7735R(bus, width=160, height=128, rotation=45)))
print("T", err(lambda: ST7735R(bus, width=160, height=128)))
g = displayio.Group()
display.root_group = g
print("U", err(lambda: displayio.Group().append(g)))
other = displayio.Group()
displayio.Group().append(other)
print("G", err(lambda: setattr(display, "root_group", other)))
print("N", err(lambda: setattr(display, "root_group", None)), display.root_group)
print("B", err(lambda: setattr(display, "brightness", 1.5)))
print("S", err(lambda: display.show(g)))
print("W", display.width, display.height, display.rotation)
display.rotation = 0
print("W0", display.width, display.height)
spi2 = busio.SPI(clock=board.IO36, MOSI=board.IO35)
print("F", err(lambda: fourwire.FourWire(spi2)))
print("P", err(lambda: fourwire.FourWire(object())))
busdisplay.release_displays()
print("I", err(lambda: fourwire.FourWire(spi2, command=board.IO12)))
bus2 = fourwire.FourWire(spi2, command=board.IO9)
print("X", err(bus2.reset))
print("C", err(lambda: bus2.send(256, b"")))
"""


def test_stand_in_behaviour_follows_circuitpython(tmp_path):
    out = run_vm(str(tmp_path), PRELUDE % {"root": ROOT, "wire": ""} + BEHAVIOUR)
    got = dict(line.split(" ", 1) for line in out.splitlines() if line[:1].isupper())
    assert got["R"] == "ValueError: Display rotation must be in 90 degree increments"
    assert got["T"] == "RuntimeError: Too many displays"
    assert got["U"] == "ValueError: Layer already in a group"  # the root counts as used
    assert got["G"] == "ValueError: Group already used"
    assert got["N"] == "ok None"
    assert got["B"] == "ValueError: brightness must be 0-1"
    assert got["S"] == "AttributeError: .show(x) removed. Use .root_group = x"
    assert got["W"] == "160 128 90"
    assert got["W0"] == "128 160"
    assert got["F"].startswith("RuntimeError: Too many display busses")
    assert got["P"] == "TypeError: spi_bus must be of type SPI, not object"
    assert got["I"] == "ValueError: command in use"  # IO12 is the SPI clock
    assert got["X"] == "RuntimeError: No reset pin"
    assert got["C"] == "ValueError: command must be 0-255"


NUMBERS = """
import sys
sys.path.append(%(root)r)
from smartmeter.ui import texts
out = []
for k, d, w in ((0, 0, 6), (1, 1, 5), (1, 0, 4), (2, 2, 4), (2, 1, 4), (3, 3, 6), (3, 2, 5)):
    for n in range(-2600, 26000, 7):
        out.append(texts.fixed(n / 10 ** k, d, w))
    print("|".join(out))
    out = []
for n in range(0, 12000, 3):
    out.append(texts.current(n / 100))
print("|".join(out))
"""


def test_number_texts_equal_on_board_and_pc(tmp_path):
    """Every value a meter sends (an integer with a scaler of 10^0..10^-3) reads the same on the
    board (float32, CircuitPython's formatting) as in the simulator (CPython)."""
    got = run_vm(str(tmp_path), NUMBERS % {"root": ROOT}).strip().replace("\n", "|").split("|")
    lines = []
    exec(NUMBERS % {"root": ROOT}, {"print": lines.append})  # noqa: S102 - the same script
    want = "|".join(lines).split("|")
    assert len(got) == len(want)
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, "%d of %d differ, e.g. %s" % (len(bad), len(want), bad[:5])
