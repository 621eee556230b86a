"""The simulator's meter sends in real time from its own thread, like a real meter on the UART.

A loop that stalls must show up as it does on the board: the UART buffer fills, bytes are
dropped (``uart_overflows``) and telegrams are lost. A loop that keeps up loses nothing.
"""

import time

from servers import free_port

from sim.hardware import SimClock
from sim.run import Simulation

SETTINGS = {
    "METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB",
    "LOG_DIR": "/sd/logs",
    "LOG_MIN_FREE_MB": 1,
    "WEB_PORT": 0,
}


def _sim(tmp_path, speed, **kw):
    values = dict(SETTINGS, WEB_PORT=free_port())
    return Simulation(
        values,
        data_dir=str(tmp_path / "sim"),
        clock=SimClock(speed=speed),
        display="none",
        quiet=True,
        realtime=True,
        **kw,
    )


def _run(sim, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sim.step()
        time.sleep(0.002)


def _drain(sim):
    for _ in range(20):
        sim.app.loop_once()
        time.sleep(0.002)


def test_meter_keeps_sending_while_the_loop_stalls(tmp_path):
    # 20x: a telegram every 0.25 s; a 600-byte UART buffer holds about 4 of them
    sim = _sim(tmp_path, 20, uart_buffer=600)
    try:
        _run(sim, 1.5)
        sent_before = sim.sent
        assert sent_before >= 4
        assert sim.uart.overflows == 0
        time.sleep(3)  # the loop stalls (a blocking network call), the meter does not
        assert sim.sent >= sent_before + 10, "the meter stopped with the loop"
        _run(sim, 0.5)
        sim.meter_thread.stop()
        _drain(sim)
    finally:
        sim.close()
    c = sim.app.state.counters
    print(sim.summary())
    assert sim.uart.overflows > 0 and c.uart_overflows == sim.uart.overflows
    assert sim.lost() >= 5  # telegrams lost in the stall, as on the board
    assert sim.hw.watchdog.max_gap_s >= 3


def test_a_loop_that_keeps_up_loses_nothing(tmp_path):
    sim = _sim(tmp_path, 20)
    try:
        _run(sim, 2)
        sim.meter_thread.stop()
        _drain(sim)
    finally:
        sim.close()
    c = sim.app.state.counters
    print(sim.summary())
    assert sim.sent >= 6
    assert sim.lost() == 0 and c.uart_overflows == 0 and c.csv_rows == sim.sent
    assert sim.hw.watchdog.max_gap_s < 1


def test_simulator_listens_on_loopback_unless_told(tmp_path):
    sim = _sim(tmp_path, 1)
    try:
        host, port = sim.app.web.server._sock.getsockname()[:2]
    finally:
        sim.close()
    assert host == "127.0.0.1" and port == sim.config.WEB_PORT
    sim = _sim(tmp_path, 1, listen="0.0.0.0")
    try:
        host = sim.app.web.server._sock.getsockname()[0]
    finally:
        sim.close()
    assert host == "0.0.0.0"


def test_cli_default_is_loopback():
    from sim.__main__ import parse_args

    assert parse_args([]).listen == "127.0.0.1"
    assert parse_args(["--listen", "0.0.0.0"]).listen == "0.0.0.0"
