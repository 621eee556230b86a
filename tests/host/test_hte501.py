# SPDX-License-Identifier: MIT
"""HTE501 driver against a fake I2C bus + sensor with the data sheet's behaviour."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for p in (ROOT, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fakes_i2c import EIO, ENODEV, ETIMEDOUT, FakeClock, FakeHTE501, FakeI2C, ref_crc8  # noqa: E402

from drivers import hte501  # noqa: E402
from drivers.hte501 import HTE501, crc8, decode_humidity, decode_temperature  # noqa: E402

ADDR = 0x40
BREAK = b"\x30\x93"
START = b"\x20\x1e"
STATUS = b"\xf3\x52"
FETCH = b"\xe0\x00"
# interval 5 s = 100 units of 50 ms = 0x0064, LSB first; CRC over 10 64 00 (computed by hand
# with the poly 0x31 / init 0xFF algorithm, and cross-checked by the fake's table CRC below)
INTERVAL_5S = b"\x72\xa7\x10\x64\x00\x39"


def make(start_ms=1_000, period_s=5, **sensor):
    clock = FakeClock(start_ms)
    bus = FakeI2C(clock)
    dev = bus.attach(FakeHTE501(clock, **sensor))
    drv = HTE501(bus, period_s=period_s, ticks_ms=clock.ticks)
    return clock, bus, dev, drv


def run(clock, drv, ms, step=10):
    """Call poll() every ``step`` ms for ``ms`` ms; return the ticks at which it returned True."""
    hits = []
    end = clock.ms + ms
    while clock.ms < end:
        if drv.poll(clock.ticks()):
            hits.append(clock.ms)
        clock.advance(step)
    return hits


def start_up(clock, drv):
    """Drive the start sequence (break, settle, interval + start) and the first reading."""
    hits = run(clock, drv, 400)
    assert hits, "no reading shortly after start"
    return hits


# -- CRC and conversion -------------------------------------------------------------------------


def test_crc8_known_values():
    assert crc8(b"\xbe\xef") == 0x92  # the classic poly-0x31/init-0xFF example word
    assert crc8(b"123456789") == 0xF7  # CRC-8/NRSC-5 catalogue check value (same parameters)
    assert crc8(b"\x00\x00") == 0x81
    assert crc8(b"\x10\x64\x00") == 0x39
    assert crc8(bytearray(b"xx\xbe\xefyy"), 2, 4) == 0x92


def test_crc8_matches_independent_table_implementation():
    for word in (b"\x00\x00", b"\xff\xff", b"\xfb\x2e", b"\x12\x34", b"\x80\x00", b"\x10\x28\x00"):
        assert crc8(word) == ref_crc8(word)


@pytest.mark.parametrize(
    "hi,lo,expected",
    [
        (0x00, 0x00, 0.0),
        (0x08, 0x66, 21.5),
        (0xFB, 0x2E, -12.34),  # -1234 as a two's complement word
        (0xF0, 0x60, -40.0),  # data sheet lower limit
        (0xFF, 0xFF, -0.01),
        (0x34, 0xBC, 135.0),  # data sheet upper limit
    ],
)
def test_temperature_is_signed(hi, lo, expected):
    assert decode_temperature(hi, lo) == pytest.approx(expected, abs=1e-9)


def test_temperature_unsigned_reading_would_be_wrong():
    # the original firmware read 0xFB2E as 643.02 degC; the driver must not
    assert decode_temperature(0xFB, 0x2E) < 0
    assert decode_humidity(0xFB, 0x2E) == pytest.approx(643.02)  # RH stays unsigned


def test_ticks_arithmetic_wraps_at_2_29():
    top = (1 << 29) - 1
    assert hte501.ticks_add(top, 1) == 0
    assert hte501.ticks_diff(5, top) == 6
    assert hte501.ticks_diff(top, 5) == -6
    assert hte501.ticks_diff(hte501.ticks_add(100, 60_000), 100) == 60_000


# -- byte-exact command sequences ---------------------------------------------------------------


def test_start_sequence_and_first_reading_byte_exact():
    clock, bus, dev, drv = make()
    t0 = clock.ticks()
    assert drv.poll(t0) is False
    assert bus.log == [("w", ADDR, BREAK)]
    assert drv.poll(t0 + 99) is False  # settle time after break not over: no bus traffic
    assert bus.log == [("w", ADDR, BREAK)]
    clock.advance(100)
    assert drv.poll(clock.ticks()) is False
    assert bus.log[1:] == [("w", ADDR, INTERVAL_5S), ("w", ADDR, START)]
    assert dev.violations == []
    assert dev.mode == "periodic" and dev.interval_ms == 5_000
    assert drv.temperature is None and drv.humidity is None
    clock.advance(199)
    assert drv.poll(clock.ticks()) is False
    assert len(bus.log) == 3  # first check not due yet
    clock.advance(1)
    assert drv.poll(clock.ticks()) is True
    assert bus.log[3:] == [("wr", ADDR, STATUS, 3), ("wr", ADDR, FETCH, 6)]
    assert drv.temperature == pytest.approx(21.5)
    assert drv.humidity == pytest.approx(45.0)
    assert drv.state == "ok" and drv.reads_ok == 1 and drv.errors == 0
    assert not bus.locked and bus.unlock_without_lock == 0
    # next check one period later, and not before
    clock.advance(4_999)
    assert drv.poll(clock.ticks()) is False
    assert len(bus.log) == 5
    clock.advance(1)
    assert drv.poll(clock.ticks()) is True
    assert bus.log[5:] == [("wr", ADDR, STATUS, 3), ("wr", ADDR, FETCH, 6)]


def test_interval_write_for_other_periods():
    clock, bus, dev, drv = make(period_s=2)
    run(clock, drv, 200)
    expected = b"\x72\xa7\x10\x28\x00" + bytes((ref_crc8(b"\x10\x28\x00"),))
    assert bus.writes()[1] == expected
    assert dev.interval_units == 40 and dev.violations == []


def test_sensor_left_in_periodic_mode_by_previous_boot_is_reconfigured():
    clock, bus, dev, drv = make()
    dev.on_write(START)  # still running from before the board reset
    dev.commands.clear()
    start_up(clock, drv)
    assert dev.violations == []  # the settings write came after "break"
    assert dev.commands[:3] == [BREAK, INTERVAL_5S, START]


def test_each_poll_does_at_most_two_transactions():
    clock, bus, dev, drv = make()
    before = 0
    end = clock.ms + 60_000
    while clock.ms < end:
        drv.poll(clock.ticks())
        assert len(bus.log) - before <= 2
        before = len(bus.log)
        clock.advance(7)
    assert drv.reads_ok >= 11


# -- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize("t,rh", [(-12.34, 87.65), (-40.0, 0.0), (0.0, 100.0), (-0.01, 12.5)])
def test_negative_and_edge_values_end_to_end(t, rh):
    clock, bus, dev, drv = make(temperature=t, humidity=rh)
    start_up(clock, drv)
    assert drv.temperature == pytest.approx(t, abs=1e-9)
    assert drv.humidity == pytest.approx(rh, abs=1e-9)


def test_values_follow_the_sensor_once_per_period():
    clock, bus, dev, drv = make()
    start_up(clock, drv)
    dev.temperature = -3.21
    hits = run(clock, drv, 20_000)
    assert len(hits) == 4  # one new reading per 5 s period
    assert all(b - a == 5_000 for a, b in zip(hits, hits[1:]))
    assert drv.temperature == pytest.approx(-3.21)


# -- not ready ----------------------------------------------------------------------------------


def test_not_ready_means_no_fetch_and_values_are_kept():
    clock, bus, dev, drv = make()
    start_up(clock, drv)
    dev.t0 += 300  # sensor clock drifts: the next result comes 300 ms late
    bus.clear()
    hits = run(clock, drv, 5_500)
    polls = [e for e in bus.log if e[2] == STATUS]
    fetches = [e for e in bus.log if e[2] == FETCH]
    assert drv.not_ready >= 1
    assert len(fetches) == 1 and len(hits) == 1  # fetched only after the ready bit was set
    assert len(polls) == drv.not_ready + 1
    assert drv.errors == 0 and drv.state == "ok"


def poll_until_reading(clock, drv, limit_ms=10_000):
    end = clock.ms + limit_ms
    while clock.ms < end:
        if drv.poll(clock.ticks()):
            return True
        clock.advance(10)
    return False


def test_ready_bit_clears_after_fetch():
    clock, bus, dev, drv = make()
    assert poll_until_reading(clock, drv)
    assert dev.data_ready() is False
    bus.locked = True
    status = bytearray(3)
    bus.writeto_then_readfrom(ADDR, STATUS, status)
    assert status[0] & 0x80 == 0 and ref_crc8(status[:2]) == status[2]
    clock.advance(5_000)
    assert dev.data_ready() is True
    bus.writeto_then_readfrom(ADDR, STATUS, status)
    assert status[0] & 0x80


def test_fetch_without_new_data_is_nacked_by_the_fake():
    clock, bus, dev, drv = make()
    assert poll_until_reading(clock, drv)
    bus.locked = True
    with pytest.raises(OSError):
        bus.writeto_then_readfrom(ADDR, FETCH, bytearray(6))


def test_periodic_mode_lost_is_restarted():
    clock, bus, dev, drv = make()
    start_up(clock, drv)
    dev.power_cycle(result_at_power_up=False)  # brown-out between two polls: idle, no data
    dev.commands.clear()
    gone = None
    end = clock.ms + 20_000
    while clock.ms < end and (gone is None or drv.temperature is None):
        drv.poll(clock.ticks())
        if drv.temperature is None and gone is None:
            gone = clock.ms
        clock.advance(10)
    assert gone is not None  # values dropped after three periods without data
    assert drv.temperature is not None and drv.state == "ok"  # ...and came back
    assert dev.commands.count(START) == 1 and dev.commands.count(BREAK) == 1
    assert drv.restarts == 2 and "no new data" in drv.last_error
    assert dev.violations == []


# -- CRC errors ---------------------------------------------------------------------------------


def test_crc_errors_are_counted_and_retried():
    clock, bus, dev, drv = make()
    # 1st status word corrupt; 2nd status ok, its fetch has a corrupt temperature CRC
    dev.corrupt_crc = 1
    real = dev._word
    seen = []

    def word(value):
        seen.append(value)
        w = real(value)
        if len(seen) == 3:  # status, status, temperature <- corrupt
            w[2] ^= 0x01
        return w

    dev._word = word
    assert run(clock, drv, 600) == []
    assert drv.crc_errors == 2 and drv.errors == 2
    assert drv.temperature is None and drv.humidity is None
    assert drv.state == "error" and "CRC" in drv.last_error
    assert drv.backoff_ms == 0  # two in a row: just re-checked, no backoff yet
    hits = run(clock, drv, 5_000)
    assert hits and drv.temperature == pytest.approx(21.5) and drv.state == "ok"


def test_crc_error_in_humidity_word_rejects_whole_reading():
    clock, bus, dev, drv = make()
    start_up(clock, drv)
    old = drv.temperature
    dev.temperature = 30.0
    clock.advance(5_000)
    # let the status word and temperature through, corrupt the humidity word only
    real = dev._word
    calls = []

    def word(value):
        calls.append(value)
        w = real(value)
        if len(calls) == 3:  # status, temperature, humidity -> corrupt humidity
            w[2] ^= 0x01
        return w

    dev._word = word
    assert drv.poll(clock.ticks()) is False
    assert drv.crc_errors == 1 and drv.temperature == old


def test_three_crc_errors_in_a_row_back_off_and_restart():
    clock, bus, dev, drv = make()
    start_up(clock, drv)
    dev.corrupt_crc = 100
    bus.clear()
    run(clock, drv, 5_700)
    assert drv.crc_errors == 3
    assert drv.backoff_ms == 1_000
    assert bus.writes()[-1] == STATUS  # nothing after the third failure until the backoff ends
    dev.corrupt_crc = 0
    bus.clear()
    run(clock, drv, 1_200)
    assert bus.writes()[:3] == [BREAK, INTERVAL_5S, START]


# -- missing / NACKing / bus-holding sensor -----------------------------------------------------


def test_absent_sensor_gives_none_counters_and_exponential_backoff():
    clock, bus, dev, drv = make()
    dev.unplug()
    t_start = clock.ms
    times = []
    end = clock.ms + 300_000
    while clock.ms < end:
        n = len(bus.log)
        assert drv.poll(clock.ticks()) is False
        if len(bus.log) > n:
            times.append(clock.ms - t_start)
        clock.advance(10)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[:7] == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000]
    assert set(gaps[6:]) == {60_000}
    assert drv.temperature is None and drv.humidity is None
    assert drv.state == "absent"
    assert drv.nack_errors == len(times) == drv.errors
    assert "19" in drv.last_error
    assert all(e == ("w", ADDR, BREAK) for e in bus.log)  # only ever the cheap probe
    assert not bus.locked


def test_unplugged_sensor_goes_stale_then_recovers_with_restart():
    clock, bus, dev, drv = make()
    start_up(clock, drv)
    last_ok = clock.ms
    dev.unplug()
    run(clock, drv, 14_000)
    assert drv.temperature == pytest.approx(21.5)  # not stale yet (3 periods = 15 s)
    assert drv.state == "ok" and drv.nack_errors >= 1
    run(clock, drv, 2_000)
    assert clock.ms - last_ok > 15_000
    assert drv.temperature is None and drv.humidity is None
    assert drv.state == "absent"
    dev.plug_in()  # came back power-cycled: idle, default 1 s interval
    dev.commands.clear()
    hits = run(clock, drv, 70_000)
    assert hits
    assert dev.commands[:3] == [BREAK, INTERVAL_5S, START]
    assert dev.interval_ms == 5_000 and dev.violations == []
    assert drv.state == "ok" and drv.restarts == 2 and drv.backoff_ms == 0


def test_nack_with_eio_is_error_not_absent():
    clock, bus, dev, drv = make()
    dev.nack_all = True
    run(clock, drv, 3_000)
    assert drv.nack_errors == 2 and drv.state == "error" and "5" in drv.last_error


@pytest.mark.parametrize("code", [EIO, ETIMEDOUT])
def test_stuck_bus_costs_bounded_time(code):
    clock, bus, _dev, drv = make()
    start_up(clock, drv)
    bus.stuck = True
    bus.stuck_errno = code
    bus.bus_time_ms = 0
    run(clock, drv, 600_000)
    # 10 minutes: attempts at 1+2+4+8+16+32 s, then every 60 s -> about 14, each 25 ms
    failures = drv.nack_errors + drv.bus_errors
    assert 10 <= failures <= 16
    assert (drv.bus_errors if code == ETIMEDOUT else drv.nack_errors) == failures
    assert bus.bus_time_ms == failures * bus.stuck_cost_ms
    assert drv.temperature is None and drv.state == "error"
    assert str(code) in drv.last_error
    bus.stuck = False
    hits = run(clock, drv, 65_000)
    assert hits and drv.state == "ok"


def test_bus_lock_held_by_other_user():
    clock, bus, dev, drv = make()
    start_up(clock, drv)
    bus.held_by_other = True
    bus.clear()
    run(clock, drv, 16_000)
    assert bus.log == []  # never touched the bus without the lock
    assert drv.lock_busy > 0 and drv.errors == drv.lock_busy
    assert drv.lock_busy <= 16_000 // 50 + 1  # retried at a bounded rate, not every pass
    assert drv.temperature is None and drv.state == "error"
    bus.held_by_other = False
    hits = run(clock, drv, 5_000)
    assert hits and drv.state == "ok"


def test_driver_releases_lock_after_exceptions():
    clock, bus, dev, drv = make()
    dev.unplug()
    for _ in range(3):
        drv.poll(clock.ticks())
        assert not bus.locked
        clock.advance(70_000)


def test_absent_address_on_bus_raises_enodev_in_fake():
    clock = FakeClock()
    bus = FakeI2C(clock)
    bus.try_lock()
    with pytest.raises(OSError) as exc:
        bus.writeto(0x41, b"\x00")
    assert exc.value.args[0] == ENODEV


def test_fake_requires_lock_like_circuitpython():
    clock, bus, dev, drv = make()
    with pytest.raises(RuntimeError):
        bus.writeto(ADDR, BREAK)


# -- time ---------------------------------------------------------------------------------------


def test_works_across_the_2_29_tick_wrap():
    wrap = 1 << 29
    clock, bus, dev, drv = make(start_ms=wrap - 2_000)
    hits = run(clock, drv, 30_000)
    assert len(hits) == 6  # first reading at +0.3 s, then every 5 s, across the wrap
    assert all(b - a == 5_000 for a, b in zip(hits, hits[1:]))
    dev.unplug()
    run(clock, drv, 16_000)
    assert drv.temperature is None


def test_poll_without_time_uses_the_clock():
    clock, bus, dev, drv = make()
    drv.poll()
    assert bus.writes() == [BREAK]
    clock.advance(100)
    drv.poll()
    assert bus.writes()[1:] == [INTERVAL_5S, START]


def test_other_address_is_used():
    clock = FakeClock()
    bus = FakeI2C(clock)
    bus.attach(FakeHTE501(clock, address=0x45, temperature=-5.5))
    drv = HTE501(bus, address=0x45, ticks_ms=clock.ticks)
    hits = run(clock, drv, 400)
    assert hits and drv.temperature == pytest.approx(-5.5)
    assert {e[1] for e in bus.log} == {0x45}


# -- the driver inside the app: one clock vocabulary ------------------------------------------


def test_sensor_built_by_the_app_polls_without_a_time_on_the_app_clock():
    """Regression: ``build`` handed the app's clock *object* to the driver, which called it
    (``TypeError: 'Clock' object is not callable``) whenever ``poll()`` got no time."""
    from sim.hardware import Hardware, ManualClock
    from smartmeter import app as app_mod
    from smartmeter import config

    clock = ManualClock(ticks=1_000)
    fake_ms = FakeClock(1_000)
    bus = FakeI2C(fake_ms)
    bus.attach(FakeHTE501(fake_ms))
    app = app_mod.build(Hardware(i2c=bus, clock=clock), config.load(lambda _n: None, {}))
    sensor = [s for s in app.sinks if s.name == "sensor"][0]
    hits = []
    for _ in range(60):  # 600 ms: break, settle, interval + start, first reading
        if sensor.driver.poll():  # no time given: the driver asks the app's clock
            hits.append(clock.ticks_ms())
        clock.advance(10)
        fake_ms.advance(10)
    assert sensor.driver.state == "ok", sensor.driver.last_error
    assert hits and 1_300 <= hits[0] <= 1_500, hits
    assert sensor.driver.temperature == 21.5


def test_poll_without_any_time_source_says_what_is_missing():
    clock = FakeClock(0)
    bus = FakeI2C(clock)
    bus.attach(FakeHTE501(clock))
    with pytest.raises(TypeError, match="now_ms or a ticks_ms"):
        HTE501(bus).poll()
