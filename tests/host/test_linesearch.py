"""Line settings and the M-Bus slave: the search through the real loop, the E5 acknowledgement.

The virtual meter sends on its own line setting; the simulated UART samples its bits at the
setting the firmware chose (sim.hardware.resample), so a wrong setting yields real garbage.
"""

import pytest

from sim.hardware import ManualClock, SimUart, resample
from sim.meter import LINE, PROFILES
from sim.run import Simulation
from smartmeter.linesearch import LINES, LineSearch
from smartmeter.protocol.layouts import LAYOUTS
from smartmeter.state import AMIS_TX, LINE_SEARCH
from smartmeter.timeutil import ticks_diff

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
AUTH = "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF"
START = 1_717_000_000  # 2024-05-29, summer time
STEP_MS = 250


def _index(line):
    for k, entry in enumerate(LINES):
        if (entry[1], entry[2]) == tuple(line):
            return k
    raise AssertionError(line)


class Memory:
    """The board's line memory (nvm), here preset to a wrong setting."""

    def __init__(self, index):
        self.index = index
        self.saved = []

    def load(self):
        return self.index

    def save(self, index):
        self.saved.append(index)


def _sim(tmp_path, layout, tx=True, **extra):
    values = {"METER_KEY": KEY, "METER_AUTH_KEY": AUTH, "LOG_DIR": "/sd/logs"}
    values.update({"LOG_MIN_FREE_MB": 1, "CIRCUITPY_WIFI_SSID": "home"})
    if tx:
        values["PIN_METER_TX"] = "IO17"
    values.update(extra)
    clock = ManualClock(start_epoch=START)
    return Simulation(
        values,
        data_dir=str(tmp_path / layout),
        layout=layout,
        clock=clock,
        display="none",
        quiet=True,
        web=False,
    )


def _run(sim, seconds):
    for _ in range(int(seconds * 1000 / STEP_MS)):
        sim.step()
        sim.clock.advance(STEP_MS)


# -- the UART model ----------------------------------------------------------------------------
def test_uart_model_passes_matching_lines_and_garbles_the_others():
    data = bytes(range(256)) * 2
    for line in LINE.values():
        assert resample(data, line, line) == (data, 0)
    for a in LINE.values():
        for b in LINE.values():
            if a != b:
                got, errors = resample(data, a, b)
                assert got != data and errors > 0, (a, b)


# -- the search through the real loop ----------------------------------------------------------
def _decodable():
    return [name for name in ("netznoe", "kng", "amis", "t210dr") if name in LAYOUTS]


@pytest.mark.parametrize("layout", _decodable())
def test_line_search_finds_the_meters_setting_from_a_wrong_start(tmp_path, layout):
    sim = _sim(tmp_path, layout)
    right = _index(sim.meter.line)
    wrong = (right + 1) % len(LINES)  # start one past it: three wrong settings to get through
    memory = Memory(wrong)
    sim.hw.line_memory = memory
    from smartmeter import app as app_mod

    sim.app = app_mod.build(sim.hw, sim.config, web=False)
    app = sim.app
    assert app.state.line == LINES[wrong][0]
    assert LINE_SEARCH in app.state.problems(sim.clock.ticks_ms(), ticks_diff)
    _run(sim, 400)
    st = app.state
    assert st.line_state == "found" and st.line == LINES[right][0]
    assert memory.saved[-1] == right
    c = st.counters
    assert c.line_switches == len(LINES) - 1  # each wrong one tried once
    assert c.decoded > 0 and c.csv_rows == c.decoded
    rows = app.storage.log_files()
    assert rows, "rows are logged once the line is found"
    found_s = st.line_found_ms / 1000
    print(
        "\nline search %s: %s found after %.1f s (simulated), %d settings tried, "
        "%d telegrams sent, %d decoded, %d logged"
        % (layout, st.line, found_s, c.line_switches + 1, sim.sent, c.decoded, c.csv_rows)
    )
    # the three wrong settings' dwell times, plus the wait for the meter on the right one
    wrong_dwell = sum(LINES[(right + k) % len(LINES)][5] for k in range(1, len(LINES))) / 1000
    assert wrong_dwell <= found_s <= wrong_dwell + (61 if layout == "amis" else 6)
    assert LINE_SEARCH not in st.problems(sim.clock.ticks_ms(), ticks_diff)


def test_search_starts_again_after_a_long_silence():
    search = LineSearch(0, ticks_diff, 0, dwell_ms=1000, silence_ms=10_000)
    assert search.poll(500, 1, 0, 0) is None and not search.searching
    assert search.poll(9_000, 1, 0, 0) is None
    assert search.poll(10_500, 1, 0, 0) == 1  # 10 s without a decode: next setting
    assert search.searching and search.searches == 2
    assert search.poll(11_600, 1, 0, 0) == 2
    assert search.poll(11_700, 1, 2, 0) is None  # two valid frames (a wrong key): line proven
    assert not search.searching and search.found_after_ms == 1_200


def test_fixed_line_settings_do_not_search(tmp_path):
    sim = _sim(tmp_path, "kng", METER_TRANSPORT="hdlc")
    assert sim.app.line is None and sim.app.state.line == "9600 8N1"
    assert sim.app.state.line_state == "fixed"
    _run(sim, 30)
    assert sim.app.state.counters.decoded == sim.sent


# -- the E5 acknowledgement -------------------------------------------------------------------
def test_amis_meter_falls_silent_without_e5_and_resumes_with_it(tmp_path):
    sim = _sim(tmp_path, "amis", tx=False, METER_BAUD=9600, METER_PARITY="even")
    meter = sim.meter
    _run(sim, 120)
    st = sim.app.state
    # no TX line: the meter offered the link (SND_NKE) twice, never got an E5, sent no data
    assert meter.nke_sent >= 2 and meter.sent == 0 and meter.acks_seen == 0
    assert sim.uart.writes == 0
    assert AMIS_TX in st.problems(sim.clock.ticks_ms(), ticks_diff)
    # wire TX: the next SND_NKE is answered and data flows, one E5 per frame
    st.meter_tx = True
    _run(sim, 120)
    assert meter.sent >= 50 and meter.repeats == 0
    # every frame acknowledged (the last E5 is still on its way to the meter)
    assert meter.acks_seen + 1 == meter.sent + meter.nke_sent - 2
    assert AMIS_TX not in st.problems(sim.clock.ticks_ms(), ticks_diff)
    sent_with_tx = meter.sent
    # TX lost again: the meter repeats the last frame twice, then falls silent
    st.meter_tx = False
    _run(sim, 30)
    assert meter.sent == sent_with_tx + 1 and meter.repeats == 2 and meter.silences == 1
    print(
        "\nAMIS: %d SND_NKE, %d SND_UD sent, %d E5 received by the meter, "
        "%d repeats, silent %d time(s) without E5"
        % (meter.nke_sent, meter.sent, meter.acks_seen, meter.repeats, meter.silences)
    )


def test_push_meters_never_get_an_e5(tmp_path):
    sim = _sim(tmp_path, "netznoe")
    _run(sim, 30)
    assert sim.meter.sent >= 5 and sim.uart.writes == 0
    assert sim.app.state.link_frames == 0


def test_every_decoder_layout_has_a_virtual_meter():
    assert set(LAYOUTS) <= set(PROFILES), set(LAYOUTS) - set(PROFILES)
    assert SimUart().set_line(9600, "none").baudrate == 9600


def test_search_runs_under_micropython(run_micropython):
    files = [
        ("smartmeter/__init__.py", "smartmeter/__init__.py"),
        ("smartmeter/linesearch.py", "smartmeter/linesearch.py"),
        ("smartmeter/timeutil.py", "smartmeter/timeutil.py"),
    ]
    script = (
        "from smartmeter.linesearch import LineSearch\n"
        "from smartmeter.timeutil import ticks_diff\n"
        "ls = LineSearch(0, ticks_diff)\n"
        "a = ls.poll(14000, 0, 0, 0)\n"
        "b = ls.poll(15000, 0, 0, 1)\n"
        "print(a, b, ls.name, ls.setting, ls.searching, ls.found_after_ms)\n"
    )
    rc, out, err = run_micropython(script, files=files)
    assert rc == 0, err
    assert out.strip() == "1 None 9600 8N1 (9600, 'none', 'auto') False 15000", out


class _BoardUart:
    """The board's UART as device.MeterLine handles it: a parity change deinitialises it and
    builds a new one; a deinitialised UART raises ValueError on every call (CircuitPython)."""

    def __init__(self, sim_uart):
        self.sim = sim_uart
        self.live = True

    def readinto(self, buf):
        if not self.live:
            raise ValueError("Object has been deinitialized and can no longer be used.")
        return self.sim.readinto(buf)

    def write(self, data):
        if not self.live:
            raise ValueError("Object has been deinitialized and can no longer be used.")
        return self.sim.write(data)


def test_a_uart_that_cannot_be_rebuilt_is_not_read_again(tmp_path):
    """A parity change deinitialises the UART; building the new one fails (no heap for its
    buffer, pins in use...). The loop used to read the deinitialised one: ValueError every pass
    ("fatal", a reset, and the same again after the reset). Now the search goes on and the next
    attempt builds a UART."""
    sim = _sim(tmp_path, "netznoe")
    right = _index(sim.meter.line)
    wrong = next(k for k, e in enumerate(LINES) if e[2] != LINES[right][2])  # other parity
    sim.hw.line_memory = Memory(wrong)
    board = {"uart": None, "parity": None, "fail": 1}

    def set_line(baudrate, parity):
        uart = board["uart"]
        if uart is not None and parity == board["parity"]:
            sim.uart.set_line(baudrate, parity)
            return uart
        if uart is not None:
            uart.live = False  # deinit()
            board["uart"] = None
        if board["fail"] and uart is not None:
            board["fail"] -= 1
            raise MemoryError("memory allocation failed, allocating 8192 bytes")
        board["uart"] = _BoardUart(sim.uart.set_line(baudrate, parity))
        board["parity"] = parity
        return board["uart"]

    sim.hw.set_line = set_line
    sim.hw.uart = set_line(sim.uart.baudrate, sim.uart.parity)
    from smartmeter import app as app_mod

    sim.app = app_mod.build(sim.hw, sim.config, web=False)
    _run(sim, 400)
    st = sim.app.state
    assert board["fail"] == 0, "the failing rebuild happened"
    assert st.line_state == "found" and st.line == LINES[right][0]
    assert st.counters.decoded > 0 and st.counters.csv_rows == st.counters.decoded


def test_a_uart_that_never_comes_back_restarts_the_board(tmp_path):
    """The UART failed to build after a parity change and its pins stay claimed ("tx in use",
    seen in the board in a box): no setting of the search can ever read again. After three
    failed rebuilds in a row the board restarts (which frees pins and heap), logging why."""
    sim = _sim(tmp_path, "netznoe")
    right = _index(sim.meter.line)
    wrong = next(k for k, e in enumerate(LINES) if e[2] != LINES[right][2])
    sim.hw.line_memory = Memory(wrong)
    board = {"uart": None, "tries": 0}

    def set_line(baudrate, parity):
        if board["uart"] is None:
            board["uart"] = _BoardUart(sim.uart.set_line(baudrate, parity))
            return board["uart"]
        board["uart"].live = False
        board["tries"] += 1
        raise ValueError("tx in use")

    resets = []
    sim.hw.set_line = set_line
    sim.hw.uart = set_line(sim.uart.baudrate, sim.uart.parity)
    sim.hw.reset = resets.append
    from smartmeter import app as app_mod

    sim.app = app_mod.build(sim.hw, sim.config, web=False)
    _run(sim, 120)
    assert board["tries"] >= 3
    assert resets and "meter UART" in resets[0], resets
