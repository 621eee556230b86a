"""The protocol core passes the real-capture fixtures under the real MicroPython VM."""

from mpy import run_micropython

CORE = [
    ("smartmeter/__init__.py", "smartmeter/__init__.py"),
    ("smartmeter/protocol/__init__.py", "smartmeter/protocol/__init__.py"),
    ("smartmeter/protocol/errors.py", "smartmeter/protocol/errors.py"),
    ("smartmeter/protocol/axdr.py", "smartmeter/protocol/axdr.py"),
    ("smartmeter/protocol/layouts.py", "smartmeter/protocol/layouts.py"),
    ("smartmeter/protocol/fastpath.py", "smartmeter/protocol/fastpath.py"),
    ("smartmeter/protocol/reading.py", "smartmeter/protocol/reading.py"),
    ("smartmeter/protocol/dlms.py", "smartmeter/protocol/dlms.py"),
    ("smartmeter/protocol/crypto.py", "smartmeter/protocol/crypto.py"),
    ("smartmeter/protocol/aes_python.py", "smartmeter/protocol/aes_python.py"),
    ("smartmeter/protocol/transport.py", "smartmeter/protocol/transport.py"),
    ("smartmeter/protocol/hdlc.py", "smartmeter/protocol/hdlc.py"),
    ("smartmeter/protocol/pipeline.py", "smartmeter/protocol/pipeline.py"),
    ("smartmeter/protocol/oms.py", "smartmeter/protocol/oms.py"),
    ("smartmeter/protocol/dsmr.py", "smartmeter/protocol/dsmr.py"),
    ("smartmeter/state.py", "smartmeter/state.py"),
    ("smartmeter/timeutil.py", "smartmeter/timeutil.py"),
    ("tests/vectors/real-frames.json", "frames.json"),
    ("tests/vectors/austria-more.json", "more.json"),
]


def test_core_decodes_every_capture_under_micropython():
    rc, out, err = run_micropython(
        "tests/host/mpy_scripts/core_fixtures.py", files=CORE, timeout=120
    )
    assert rc == 0, out + err
    last = out.strip().splitlines()[-1]
    assert last.startswith("checked 8 failures 0"), out


def test_core_decodes_every_austria_more_capture_under_micropython():
    # pure-Python AES (GCM and CBC), the VM's own dialect: every capture exactly, the fast path
    # agrees, a wrong key is a wrong key
    rc, out, err = run_micropython(
        "tests/host/mpy_scripts/austria_more.py", files=CORE, timeout=300
    )
    assert rc == 0, out + err
    last = out.strip().splitlines()[-1]
    assert last == "checked 29 failures 0", out


def test_state_and_time_modules_import_under_micropython():
    script = (
        "from smartmeter.state import State\n"
        "from smartmeter import timeutil\n"
        "s = State()\n"
        "s.history.add(1700000000, 500)\n"
        "print(len(s.history), s.problems(), timeutil.utc_epoch((2024, 10, 27, 2, 30, 0)))\n"
    )
    rc, out, err = run_micropython(script, files=CORE)
    assert rc == 0, err
    assert out.strip() == "1 ['no_key', 'clock', 'no_wifi'] (1729992600, 60)", out
