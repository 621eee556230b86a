"""The board in a box's stand-ins (board/standins/) against what CircuitPython documents: a
``code.py`` of the test's own runs in the VM and prints one line per check.

Each expectation comes from the CircuitPython source the stand-in names (socketpool's errors
from ports/espressif/common-hal/socketpool/Socket.c, the UART buffer from
ports/espressif/common-hal/busio/UART.c, nvm from shared-bindings/nvm/ByteArray.c, getenv from
supervisor/shared/settings.c, storage.mount from shared-module/storage/__init__.c). Skipped
without ``CIRCUITPYTHON`` (see test_board_system.py).
"""

from __future__ import annotations

import pytest
from test_board_system import VM, build_release, load_runner, pytestmark  # noqa: F401

CODE = r"""
import errno
import os
import time

import board
import busio
import microcontroller
import socketpool
import storage
import wifi


def check(name, fn):
    try:
        print("CHECK %s %r" % (name, fn()))
    except Exception as exc:
        print("CHECK %s %s %s" % (name, type(exc).__name__, exc))


pool = socketpool.SocketPool(wifi.radio)
check("getaddrinfo", lambda: pool.getaddrinfo("127.0.0.1", 80))
check("gaierror", lambda: pool.getaddrinfo("no-such-host.invalid", 80))
check("getaddrinfo_empty", lambda: pool.getaddrinfo("", 123))
check("gaierror_is_oserror", lambda: issubclass(socketpool.SocketPool.gaierror, OSError))
srv = pool.socket()
srv.setsockopt(pool.SOL_SOCKET, pool.SO_REUSEADDR, 1)
srv.bind(("", 0 + 18765))
srv.listen(2)
srv.setblocking(False)
check("accept_nonblocking", srv.accept)
srv.settimeout(0.2)
check("accept_timeout", srv.accept)
cli = pool.socket()
cli.connect(("127.0.0.1", 18765))
srv.settimeout(2)
conn, addr = srv.accept()
check("accept_peer", lambda: (type(addr[0]).__name__, addr[0], type(addr[1]).__name__))
check("accepted_timeout", lambda: conn._timeout_ms)
buf = bytearray(8)
check("recv_nonblocking", lambda: conn.recv_into(buf))
conn.settimeout(0.2)
check("recv_timeout", lambda: conn.recv_into(buf))
check("bufsize_too_big", lambda: conn.recv_into(buf, 9))
check("no_recv", lambda: hasattr(conn, "recv"))
cli.send(b"hi")
conn.settimeout(1)
check("recv_data", lambda: (conn.recv_into(buf), bytes(buf[:2])))
cli.close()
time.sleep(0.1)
check("recv_blocking_eof", lambda: conn.recv_into(buf))
conn.settimeout(0)
check("recv_nonblocking_eof", lambda: conn.recv_into(buf))
conn.close()
conn.close()  # a second close is ignored
check("recv_after_close", lambda: conn.recv_into(buf))
check("errno_names", lambda: (errno.EAGAIN, errno.ETIMEDOUT, errno.ENOTCONN, errno.EBADF))
srv.close()

check("uart_no_pins", lambda: busio.UART(None, None))
check("uart_bits", lambda: busio.UART(rx=board.IO21, bits=10))
uart = busio.UART(rx=board.IO18, baudrate=2400, timeout=0)  # receiver_buffer_size=64
check("uart_in_use", lambda: busio.UART(rx=board.IO18))
check("uart_empty_read", lambda: uart.read(10))
import gc

gc.collect()
before = gc.mem_alloc()
print("READY uart")
while not uart.in_waiting:
    time.sleep(0.01)
time.sleep(0.3)
n = uart.in_waiting
grown = gc.mem_alloc() - before
check("uart_pump_allocates_little", lambda: grown < 512)  # 176 B now; 2784 B before
data = uart.read(400)
check("uart_overflow", lambda: (n, len(data), data[:3], data[-1]))
uart.deinit()
check("uart_deinit", lambda: uart.read(1))

import keypad

keys = keypad.Keys((board.IO4, board.IO5), value_when_pressed=False, pull=True, max_events=1)
check("keys_dup", lambda: keypad.Keys((board.IO6, board.IO6), value_when_pressed=False))
print("READY keys")
time.sleep(2)  # the host presses and releases meanwhile: the queue of one takes the press only
e = keys.events.get()
check("keys_events", lambda: (e.key_number, e.pressed, e.released))
check("keys_overflowed", lambda: (keys.events.overflowed, keys.events.get()))
keys.events.clear()
check("keys_cleared", lambda: keys.events.overflowed)

nvm = microcontroller.nvm
check("nvm_len", lambda: len(nvm))
check("nvm_fresh", lambda: nvm[100])
check("nvm_value", lambda: nvm.__setitem__(5, 256))
check("nvm_slice_len", lambda: nvm.__setitem__(slice(0, 2), b"x"))
check("nvm_index", lambda: nvm[8192])
nvm[10:12] = b"\x01\x02"
check("nvm_slice", lambda: nvm[9:13])

check("getenv_str", lambda: os.getenv("S_QUOTED"))
check("getenv_int", lambda: os.getenv("S_INT"))
check("getenv_comment", lambda: os.getenv("S_BARE"))
check("getenv_missing", lambda: os.getenv("S_NONE", "dflt"))
check("getenv_escape", lambda: os.getenv("S_ESC"))
import sdcardio

sd = sdcardio.SDCard(busio.SPI(board.IO39, MOSI=board.IO38, MISO=board.IO40), board.IO47)
check("sd_blocks", sd.count)
check("mount_missing_dir", lambda: storage.mount(storage.VfsFat(sd), "/nowhere"))
storage.mount(storage.VfsFat(sd), "/sd")
check("sd_mounted", lambda: os.statvfs("/sd")[0])
check("umount_unknown", lambda: storage.umount("/elsewhere"))
check("write_circuitpy", lambda: open("/x.txt", "w"))
check("time_struct", lambda: time.localtime(0).tm_year)
check("struct_time", lambda: time.mktime(time.struct_time((2024, 5, 1, 0, 0, 0, 0, -1, -1))))
check("no_ticks_ms_in_time", lambda: hasattr(time, "ticks_ms"))
print("DONE")
while True:
    time.sleep(1)
"""

SETTINGS = (
    'S_QUOTED = "a b\\tc"  # comment\n'
    "S_INT = 7\n"
    "S_BARE = plain words   # comment\n"
    'S_ESC = "\\u00e4\\""\n'
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    run = load_runner()
    settings = root / "settings.toml"
    settings.write_text((run.REPO / "sim" / "settings.toml").read_text() + SETTINGS)
    b = run.Board(
        VM,
        data_dir=root / "data",
        settings_file=settings,
        release=build_release(root / "dist"),
        out=None,
        telegrams=0,
        settings={"NTP_SERVER": ""},
        drive_files={"code.py": CODE},
    )
    try:
        b.start()
        b.wait_for("READY uart", timeout=30)
        b.wire(bytes(range(256)) + bytes(44))  # 300 bytes at once
        b.wait_for("READY keys", timeout=30)
        b.press("next")  # pressed, released: the release does not fit the queue of one
        b.wait_for("DONE", timeout=30)
    finally:
        b.stop()
    out = {}
    for line in b.lines:
        if line.startswith("CHECK "):
            name, _, rest = line[6:].partition(" ")
            out[name] = rest
    return out


@pytest.mark.parametrize(
    "name, expected",
    [
        ("getaddrinfo", "[(2, 0, 0, '', ('127.0.0.1', 80))]"),
        ("gaierror", "_GaiError (200, 'Name or service not known')"),
        ("getaddrinfo_empty", "_GaiError (200, 'Name or service not known')"),
        ("gaierror_is_oserror", "True"),
        ("accept_nonblocking", "OSError [Errno 11] EAGAIN"),
        ("accept_timeout", "OSError [Errno 110] ETIMEDOUT"),
        ("accept_peer", "('str', '127.0.0.1', 'int')"),
        ("accepted_timeout", "0"),  # accepted sockets start non-blocking
        ("recv_nonblocking", "OSError [Errno 11] EAGAIN"),
        ("recv_timeout", "OSError [Errno 110] ETIMEDOUT"),
        ("bufsize_too_big", "ValueError bufsize must be <= len(buffer)"),
        ("no_recv", "False"),
        ("recv_data", "(2, b'hi')"),
        ("recv_blocking_eof", "0"),
        ("recv_nonblocking_eof", "OSError [Errno 107] ENOTCONN"),
        ("recv_after_close", "OSError [Errno 9] EBADF"),
        ("uart_no_pins", "ValueError tx and rx cannot both be None"),
        ("uart_bits", "ValueError bits must be 5-9"),
        ("uart_in_use", "ValueError rx in use"),
        ("uart_empty_read", "None"),
        # 64 asked, 136 given (ESP32: FIFO 128 + 8); the newest bytes are lost
        ("uart_overflow", "(136, 136, b'\\x00\\x01\\x02', 135)"),
        ("uart_pump_allocates_little", "True"),  # 300 bytes in: no buffer on the heap grows
        (
            "uart_deinit",
            "ValueError Object has been deinitialized and can no longer be used."
            " Create a new object.",
        ),
        ("keys_dup", "TypeError duplicate pins"),
        ("keys_events", "(0, True, False)"),
        ("keys_overflowed", "(True, None)"),  # the queue was full: the NEW event is dropped
        ("keys_cleared", "False"),
        ("nvm_len", "8192"),
        ("nvm_fresh", "0"),
        ("nvm_value", "ValueError Bytes must be between 0 and 255."),
        ("nvm_slice_len", "ValueError Slice and value different lengths."),
        ("nvm_index", "IndexError bytearray index out of range"),
        ("nvm_slice", "bytearray(b'\\x00\\x01\\x02\\x00')"),
        ("getenv_str", "'a b\\tc'"),
        ("getenv_int", "'7'"),  # CircuitPython 10.3: always a string
        ("getenv_comment", "'plain words'"),
        ("getenv_missing", "'dflt'"),
        ("getenv_escape", "'\u00e4\"'"),
        ("mount_missing_dir", "RuntimeError Mount point directory missing"),
        ("sd_blocks", "2097152"),  # the box's 1 GiB card
        ("sd_mounted", "32768"),  # the cluster CircuitPython's mkfs picks for 1 GiB
        ("umount_unknown", "OSError [Errno 22] Invalid argument"),
        ("write_circuitpy", "OSError [Errno 30] Read-only filesystem"),  # code cannot write
        ("time_struct", "1970"),
        ("struct_time", "1714521600"),
        ("no_ticks_ms_in_time", "False"),
    ],
)
def test_standin(results, name, expected):
    assert results.get(name) == expected


RESETS = r"""
import time

import microcontroller
from watchdog import WatchDogMode

why = str(microcontroller.cpu.reset_reason)
print("BOOT %s nvm %d" % (why, microcontroller.nvm[0]))
if why.endswith("POWER_ON"):
    microcontroller.nvm[0] = 1
    wd = microcontroller.watchdog
    wd.timeout = 1.0
    wd.mode = WatchDogMode.RESET
    for _ in range(5):
        wd.feed()
        time.sleep(0.3)
    print("HANG")
    try:
        while True:
            pass  # a hung loop: only the watchdog ends it
    except BaseException:  # noqa: BLE001 - nothing to catch: the reset comes from outside
        print("CAUGHT")
elif why.endswith("WATCHDOG"):
    microcontroller.nvm[0] = 2
    try:
        microcontroller.reset()
    except BaseException:  # noqa: BLE001 - a reset cannot be caught
        print("CAUGHT")
else:
    print("DONE")
    while True:
        time.sleep(1)
"""


def test_watchdog_and_reset_restart_the_board_with_their_reason(tmp_path):
    run = load_runner()
    b = run.Board(
        VM,
        data_dir=tmp_path / "data",
        release=build_release(tmp_path / "dist"),
        out=None,
        telegrams=0,
        settings={"NTP_SERVER": ""},
        drive_files={"code.py": RESETS},
    )
    try:
        b.start()
        b.wait_for("DONE", timeout=40)
    finally:
        b.stop()
    boots = [line for line in b.lines if line.startswith("BOOT ")]
    assert boots == [
        "BOOT microcontroller.ResetReason.POWER_ON nvm 0",
        "BOOT microcontroller.ResetReason.WATCHDOG nvm 1",  # nvm survives resets
        "BOOT microcontroller.ResetReason.SOFTWARE nvm 2",
    ]
    assert b.boots == ["POWER_ON", "WATCHDOG", "SOFTWARE"]
    assert "CAUGHT" not in b.lines
    assert 250 <= b.wd_gap_ms < 1000  # fed every 0.3 s, then starved: no feed after HANG
