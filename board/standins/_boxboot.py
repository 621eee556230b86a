# SPDX-License-Identifier: MIT
"""The VM's entry point: make the VM look like a CircuitPython board, then run /code.py.

``circuitpython-unix -X heapsize=N _boxboot.py CONFIG.json`` (board/run.py writes CONFIG):
1. open the SD image and the nvm file while "/" is still the host's root;
2. connect to the host (meter line, buttons, resets, watchdog) and start the box clock;
3. put CircuitPython's ``time`` and ``os`` into ``sys.modules`` (the VM's own ones differ:
   no RTC, ``getenv`` reads the host's environment);
4. mount the CIRCUITPY folder read-only at "/" (code cannot write CIRCUITPY while USB is
   connected) and the stand-ins at "/.box", ``sys.path`` = stand-ins (the board's built-ins),
   "", "/", "/lib";
5. join the WiFi named by CIRCUITPY_WIFI_SSID in settings.toml, as CircuitPython does before
   code.py; print "code.py output:" and import /code.py.
An exception that ends code.py is printed with "Code done running." and the VM exits (3).
"""

import gc
import json
import os
import sys
import time  # noqa: F401 - the VM's, imported first: the stand-ins keep it

import _box


def _boot():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    if cfg.get("sd_image"):
        cfg["sd_file"] = open(cfg["sd_image"], "r+b")  # noqa: SIM115 - open for the VM's life
    if cfg.get("nvm"):
        cfg["nvm_file"] = open(cfg["nvm"], "r+b")  # noqa: SIM115
    if cfg.get("display_wire"):  # the TFT's SPI bytes (fourwire stand-in), new at each boot
        cfg["display_wire_file"] = open(cfg["display_wire"], "wb")  # noqa: SIM115
    _box.CONFIG.update(cfg)
    _box.setup_clock(cfg.get("speed", 1))
    _box.connect(cfg["port"])
    import _boxos
    import _boxtime

    if cfg.get("rtc_epoch"):
        _boxtime._set_rtc(cfg["rtc_epoch"])
    standins = cfg["standins"]
    drive = cfg["drive"]
    os.umount("/")
    os.mount(os.VfsPosix(drive), "/", readonly=True)
    os.mount(os.VfsPosix(standins), "/.box", readonly=True)
    os.chdir("/")
    sys.path[:] = ["/.box", "", "/", "/lib"]
    sys.modules["time"] = _boxtime
    sys.modules["os"] = _boxos
    ssid = _boxos.getenv("CIRCUITPY_WIFI_SSID")
    if ssid:
        import wifi

        try:
            wifi.radio.connect(ssid, _boxos.getenv("CIRCUITPY_WIFI_PASSWORD") or "")
        except (ConnectionError, ValueError) as exc:
            print("WiFi: %s" % exc)


def _heap_probe(_payload):
    """The host asks (Board.heap_now()): the free heap now, and after a collection (live), with
    what the display stand-ins hold (C in static memory on a board), and the firmware's modules
    loaded now."""
    free = gc.mem_free()
    gc.collect()
    bd = sys.modules.get("busdisplay")
    standins = bd.heap_bytes() if bd is not None else 0
    text = "heap free %d live_free %d alloc %d standins %d" % (
        free,
        gc.mem_free(),
        gc.mem_alloc(),
        standins,
    )
    # and which of the firmware's modules are loaded (tests of what a part loads and unloads):
    # one short message each, so the probe needs no large block of a tight heap
    for name in sys.modules:
        if name.startswith("smartmeter") or name.startswith("adafruit"):
            _box.send(b"S"[0], b"module " + name.encode())
    _box.send(b"S"[0], text.encode())


_boot()
del _boot
_box.on(b"H"[0], _heap_probe)
gc.collect()
_box.send(b"S"[0], ("boot heap free %d alloc %d" % (gc.mem_free(), gc.mem_alloc())).encode())
print("code.py output:")
try:
    __import__("code")
except SystemExit:
    pass
except BaseException as exc:  # noqa: BLE001 - as the board: print it and stop
    import traceback  # CircuitPython's (no sys.print_exception there)

    traceback.print_exception(exc)
    print("\nCode done running.")
    _box.send(b"E"[0], repr(exc).encode()[:200])
    sys.exit(3)
print("\nCode done running.")
_box.send(b"E"[0], b"code.py returned")
sys.exit(3)
