"""The memory bench runs the real loop in the MicroPython VM (bench/memory_bench.py), and
app.build's MemoryError handling works under MicroPython too."""

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
