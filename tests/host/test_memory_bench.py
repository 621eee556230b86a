"""The memory bench runs the real loop in the MicroPython VM (bench/memory_bench.py), and
app.build's MemoryError handling works under MicroPython too."""

import re

from mpy import micropython_available

from bench import memory_bench


def _need_vm(require):
    ok, reason = micropython_available()
    require(ok, reason)


def test_decode_and_csv_heap_from_mpy_and_from_py(require):
    _need_vm(require)
    mpy = memory_bench.run("csv", "mpy", n=6)
    py = memory_bench.run("csv", "py", n=6)
    for r in (mpy, py):
        assert r["decoded"] == 6 and r["csv_rows"] == 6, r["output"]
        assert r["base"] < r["live"] <= r["peak"], r["output"]
        assert r["left_out"] == []
    # compiled modules leave less in the heap than source (the board compiles .py at import)
    assert mpy["live"] < py["live"], (mpy["live"], py["live"])


def test_part_without_memory_is_left_out_under_micropython(require):
    """MQTT's module cannot be loaded (MemoryError): decode, CSV and the web page run on."""
    _need_vm(require)
    r = memory_bench.run("csv+web+mqtt", "mpy", n=6, fail=("outputs.mqtt",))
    assert r["left_out"] == ["off_mqtt"], r["output"]
    assert r["decoded"] == 6 and r["csv_rows"] == 6, r["output"]
    assert r["web_responses"] == 2, r["output"]  # /api/status and / after the fifth telegram
    assert "'mqtt': 'not enough memory'" in r["output"]
    assert "b'HTTP/1.1 200'" in r["output"]


def test_mqtt_and_graphite_publish_under_micropython(require):
    """Our MQTT client and the Graphite sink talk to the bench's broker/server in the VM (the
    dialect: e.g. ``del buf[:n]`` on a bytearray is a TypeError on Micro/CircuitPython)."""
    _need_vm(require)
    r = memory_bench.run("csv+mqtt+graphite", "mpy", n=3)
    assert "mqtt ok graphite ok" in r["output"], r["output"]
    assert "errors {}" in r["output"] or "'mqtt': ''" in r["output"], r["output"]


def test_displayio_stand_ins_weigh_what_the_c_objects_weigh(require):
    """The display figures compare label kinds fairly only if a stand-in TileGrid, Bitmap,
    Palette and Group hold what the C object holds on the board (bench/mpy_fakes/displayio.py)."""
    _need_vm(require)
    sizes = memory_bench.object_sizes()
    for name, c_size in memory_bench.C_SIZES.items():
        slack = 32 if name.startswith("Palette") else 4  # no stand-in palette is under 64 bytes
        assert c_size - 4 <= sizes[name] <= c_size + slack, (name, sizes[name], c_size)
    # a label.Label pays a TileGrid per character, a bitmap_label 2 bits per pixel
    # and the screens' TileText one byte (a tile index), its fixed part is half or less
    per_char = {}
    for kind in ("label", "bitmap_label", "TileText"):
        long_text = sizes["%s 'cos phi (berechnet)' scale 1" % kind]
        per_char[kind] = (long_text - sizes["%s '' scale 1" % kind]) / 19
    assert 96 <= per_char["label"] <= 128, per_char
    assert 18 <= per_char["bitmap_label"] <= 40, per_char
    assert per_char["TileText"] <= 2, per_char
    assert 2 * sizes["TileText '' scale 1"] <= sizes["bitmap_label '' scale 1"], sizes


def test_display_visits_every_screen_under_micropython(require):
    """The real Ui with adafruit_display_text on the stand-ins: every screen and the message
    built in turn (tests/host/test_ui.py checks that only the visible one is in the tree)."""
    _need_vm(require)
    r = memory_bench.run("csv+display", "mpy", n=11)
    assert r["decoded"] == 11 and r["csv_rows"] == 11 and r["left_out"] == [], r["output"]
    from smartmeter.ui.screens import SCREENS

    shown = re.search(r"^screens (\S+)$", r["output"], re.M).group(1).split(",")
    assert shown == [name for name, _cycle in SCREENS] + ["message"], shown


def test_per_module_figures_cover_the_decode_and_csv_boot_path(require):
    # each boot module imported in its own step: every one retains heap, and the firmware's own
    # imports that follow load (almost) nothing more - the list covers what decode + CSV loads
    _need_vm(require)
    costs, r = memory_bench.module_costs("mpy")
    assert [m for m, _c in costs] == list(memory_bench.BOOT_MODULES)
    assert all(c > 0 for _m, c in costs), costs
    core = next(s for s in r["steps"] if s[0] == "core imports")
    assert core[3] - core[1] < 1024, core  # heap after minus before: nothing new imported
    assert r["decoded"] == memory_bench.TELEGRAMS and r["csv_rows"] == memory_bench.TELEGRAMS
