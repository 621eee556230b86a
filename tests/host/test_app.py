"""The real super-loop (``App.loop_once``) with fakes that have real semantics.

UART delivered in odd chunks, SD faults (ENOSPC at byte N, EIO, removal and reinsertion),
power cuts, midnight and DST rollover, a clock that jumps, bad settings, sinks that raise.
"""

import random

import pytest
from fakefs import EIO, ENOSPC, FakeFS, PowerCut

from sim.hardware import Console, Hardware, ManualClock, SimRadio, SimUart
from sim.meter import VirtualMeter
from smartmeter import app as app_mod
from smartmeter import config
from smartmeter import state as state_mod
from smartmeter.datalog.csvlog import read_rows
from smartmeter.timeutil import epoch_from_fields

KEY_HEX = "36C66639E48A8CA4D6BC8B282A793BBB"
KEY = bytes.fromhex(KEY_HEX)


def settings(**extra):
    values = {"METER_KEY": KEY_HEX, "LOG_DIR": "/sd/logs", "LOG_MIN_FREE_MB": 1}
    values["CIRCUITPY_WIFI_SSID"] = "home"
    values.update(extra)
    return values


class Rig:
    """App + virtual meter + fakes, stepped by hand (5 s of meter time per telegram)."""

    def __init__(self, start, fs=None, layout="netznoe", chunk=None, **extra):
        self.clock = ManualClock(start_epoch=start, ticks=(1 << 29) - 20_000)  # wraps soon
        self.fs = fs if fs is not None else FakeFS()
        self.fs.dirs.add("/sd")
        self.uart = SimUart(buffer_size=8192)
        self.chunk = chunk  # bytes arrive in pieces of this size, one loop pass apart
        self.console = Console(out=None, interactive=False)
        self.cfg = config.load(lambda _n: None, settings(**extra))
        hw = Hardware(
            uart=self.uart,
            fs=self.fs,
            mount=self.fs.mount,
            log_dir="/sd/logs",
            radio=SimRadio(),
            clock=self.clock,
            console=self.console,
        )
        self.app = app_mod.build(hw, self.cfg, web=False)
        self.meter = VirtualMeter(layout, KEY, None, seed=7)
        self.sent = 0

    def telegram(self, epoch=None, passes=3):
        data = self.meter.telegram(self.clock.epoch if epoch is None else epoch)
        self.sent += 1
        step = self.chunk or len(data)
        for i in range(0, len(data), step):
            self.uart.push(data[i : i + step])
            self.app.loop_once()
        for _ in range(passes):
            self.app.loop_once()
            self.clock.advance(5000 // passes)

    @property
    def counters(self):
        return self.app.state.counters

    def rows(self):
        out = []
        for name in sorted(self.fs.listdir("/sd/logs")):
            out.extend(read_rows(self.fs, "/sd/logs/" + name))
        return out


def test_odd_uart_chunks_decode_and_log_every_telegram():
    for chunk in (1, 7, 64, 300, None):
        rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)), chunk=chunk)
        for _ in range(12):
            rig.telegram()
        assert rig.counters.decoded == 12, chunk
        assert rig.counters.csv_rows == 12
        assert len(rig.rows()) == 12
        assert rig.counters.checksum_errors == 0


def test_status_line_and_console_keys():
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)))
    rig.telegram()
    line = [x for x in rig.console.lines if "rx " in x][-1]
    assert "dec 1" in line and "rows 1" in line and KEY_HEX not in line
    rig.console.type("d")
    rig.app.loop_once()
    dump = "\n".join(rig.console.lines)
    assert "decoded 1" in dump and KEY_HEX.lower() not in dump.lower()
    rig.console.type("r")
    rig.app.loop_once()
    assert rig.app.restart_requested


def test_sd_full_at_byte_n_pauses_then_resumes_without_partial_rows():
    fs = FakeFS(capacity=2_000_000)
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)), fs=fs)
    for _ in range(3):
        rig.telegram()
    fs.inject("write", ENOSPC, times=1, after_bytes=40)
    rig.telegram()
    # the row that hit ENOSPC is lost (counted, no partial row); the card has room again at
    # once (retention/refresh), so the next row is written
    assert (rig.counters.csv_errors, rig.counters.csv_lost) == (1, 1)
    assert rig.app.state.sd_state == "ok" and state_mod.SD_FULL not in rig.app.state.problems()
    for _ in range(3):
        rig.telegram()
    assert rig.app.state.sd_state == "ok"
    rows = rig.rows()  # parses: no partial row left behind
    assert len(rows) == rig.counters.csv_rows == rig.sent - rig.counters.csv_lost
    assert rig.counters.csv_lost == 1
    assert rig.counters.decoded == rig.sent  # decoding never stopped


def test_sd_eio_and_removal_then_reinsertion_resume_by_themselves():
    fs = FakeFS()
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)), fs=fs)
    rig.telegram()
    fs.inject("write", EIO)
    rig.telegram()
    assert rig.counters.csv_errors >= 1
    fs.remove_card(random.Random(1))
    for _ in range(4):
        rig.telegram()
    assert rig.app.state.sd_state == "missing"
    assert state_mod.SD_MISSING in rig.app.state.problems()
    fs.insert_card()
    for _ in range(12):  # remount backoff is at most 30 s = 6 telegrams
        rig.telegram()
    assert rig.app.state.sd_state == "ok"
    assert rig.counters.sd_remounts >= 1
    rows = rig.rows()
    assert len(rows) == rig.counters.csv_rows
    epochs = [e for e, _ in rows]
    assert len(set(epochs)) == len(epochs)  # no duplicate rows
    assert rig.counters.decoded == rig.sent


def test_power_cuts_through_the_loop_lose_at_most_the_last_row():
    rng = random.Random(42)
    for trial in range(1000):
        fs = FakeFS(durable_on="flush")
        rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)), fs=fs)
        for _ in range(rng.randint(1, 5)):
            rig.telegram()
        before = len(rig.rows())
        fs.cut_at = fs.bytes_written + rng.randint(1, 150)
        with pytest.raises(PowerCut):
            for _ in range(5):
                rig.telegram()
        fs.power_cut(rng)
        fs.cut_at = None
        fs.mount()
        rig2 = Rig(rig.clock.epoch + 5, fs=fs)  # reboot: repair at start
        rig2.telegram()
        rows = rig2.rows()  # always parses
        # every row completed before the cut survives, plus the one logged after the reboot;
        # the row in flight at the cut is either whole or gone
        assert len(rows) >= before + 1, trial
        assert len(rows) <= before + 2, trial
        epochs = [e for e, _ in rows]
        assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs), trial


def test_midnight_and_dst_rollover_files():
    # 2024-10-27 00:59:40 UTC = 02:59:40 CEST; at 01:00 UTC clocks go back to 02:00 CET
    start = epoch_from_fields((2024, 10, 26, 21, 59, 40))  # 23:59:40 CEST on the 26th
    rig = Rig(start)
    for _ in range(8):
        rig.telegram()
    names = sorted(rig.fs.listdir("/sd/logs"))
    assert names == ["2024-10-26.csv", "2024-10-27.csv"]
    rig.clock.epoch = epoch_from_fields((2024, 10, 27, 0, 59, 40))
    for _ in range(8):
        rig.telegram()
    text = rig.fs.content("/sd/logs/2024-10-27.csv").decode()
    assert "02:59:55;+02:00" in text and "02:00:00;+01:00" in text
    epochs = [e for e, _ in rig.rows()]
    assert epochs == sorted(epochs) and len(epochs) == 16


def test_clock_that_jumps_back_never_reorders_a_file():
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)))
    for _ in range(3):
        rig.telegram()
    rig.clock.epoch -= 3600  # meter clock corrected by an hour
    for _ in range(3):
        rig.telegram()
    for name in rig.fs.listdir("/sd/logs"):
        epochs = [e for e, _ in read_rows(rig.fs, "/sd/logs/" + name)]
        assert epochs == sorted(epochs), name
    assert rig.counters.csv_rows == 6


def test_no_row_without_a_clock():
    rig = Rig(None)
    rig.app.state.latest = None
    # a meter without a date-time and no RTC: the reading is shown but never logged
    from sim import frames, telegrams

    apdu = bytearray(telegrams.plaintext("burgenland", rig.meter.values(0), (2024, 1, 1, 0, 0, 0)))
    apdu[5:18] = b"\x00"  # no date-time in the header
    payload = telegrams.envelope(bytes(apdu), KEY, b"LGZ\x01\x02\x03\x04\x05", 9)
    rig.uart.push(frames.hdlc_frames(payload))
    rig.app.loop_once()
    assert rig.counters.decoded == 1
    assert rig.counters.csv_rows == 0 and rig.counters.csv_no_time == 1  # counted, shown
    assert rig.app.state.latest is not None


def test_wrong_key_is_shown_as_wrong_key_not_no_signal():
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)), METER_KEY="00" * 16)
    for _ in range(3):
        rig.telegram()
    c = rig.counters
    assert c.bytes_in > 0 and c.frames_ok > 0 and c.wrong_key == 3 and c.csv_rows == 0
    problems = rig.app.state.problems(rig.clock.ticks_ms(), app_mod.ticks_diff)
    assert problems[0] == state_mod.WRONG_KEY
    # the serial line speaks UI_LANGUAGE (default German), as the display and the web page do
    assert "! Falscher Schluessel?" in rig.app.status_line()
    rig.app.config.UI_LANGUAGE = "en"
    assert "! Wrong key?" in rig.app.status_line()


def test_no_signal_after_silence():
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)))
    rig.telegram()
    assert state_mod.NO_SIGNAL not in rig.app.state.problems(
        rig.clock.ticks_ms(), app_mod.ticks_diff
    )
    for _ in range(40):
        rig.clock.advance(1000)
        rig.app.loop_once()
    problems = rig.app.state.problems(rig.clock.ticks_ms(), app_mod.ticks_diff)
    assert state_mod.NO_SIGNAL in problems


@pytest.mark.parametrize(
    "key,value,text",
    [
        ("METER_KEY", "36C66639E48A8CA4D6BC8B282A793B", "METER_KEY"),
        ("METER_KEY", "zz" * 16, "METER_KEY"),
        ("WEB_PORT", "eighty", "WEB_PORT"),
        ("WEB_PORT", 70000, "WEB_PORT"),
        ("CSV_DIALECT", "french", "CSV_DIALECT"),
        ("MQTT_TLS", "maybe", "MQTT_TLS"),
        ("UI_LANGUAGE", "klingon", "UI_LANGUAGE"),
    ],
)
def test_bad_settings_name_the_key_never_the_value_and_the_board_runs(key, value, text):
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)), **{key: value})
    problems = rig.cfg.problems
    assert len(problems) == 1 and problems[0].startswith(text)
    assert str(value) not in problems[0]
    rig.telegram()  # still runs (degraded)
    assert state_mod.CONFIG in rig.app.state.problems()
    dump = "\n".join(rig.app.status_dump())
    assert text in dump and str(value) not in dump


def test_missing_key_and_wifi_is_a_degraded_mode():
    cfg = config.load(lambda _n: None, {})
    assert "KEY" not in repr(cfg) and config.public(cfg)["METER_KEY"] is False
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)), METER_KEY="")
    rig.telegram()
    assert rig.counters.bytes_in > 0 and rig.counters.decoded == 0
    assert rig.app.state.problems()[0] == state_mod.NO_KEY


def test_settings_toml_parser_and_os_getenv_strings():
    values, problems = config.parse_toml(
        'A = "x # y"\nB = 12_000\nC = true\n# c\nD = "q\\"u"\nE = [1]\nF\n'
    )
    assert values == {"A": "x # y", "B": 12000, "C": True, "D": 'q"u'}
    assert problems == [
        "line 6: E has a value that is not a string, number or bool",
        "line 7: expected KEY = value",
    ]
    # CircuitPython 10.2+: os.getenv returns str for everything
    env = {
        "WEB_PORT": "8081",
        "MQTT_TLS": "true",
        "METER_KEY": "0x36, 0xC6, " + ", ".join(["0x00"] * 14),
    }
    cfg = config.load(env.get)
    assert cfg.WEB_PORT == 8081 and cfg.MQTT_TLS is True and cfg.METER_KEY[:2] == b"\x36\xc6"
    assert config.parse_toml(config.dump_toml({"X": 'a"b', "Y": 3, "Z": False}))[0] == {
        "X": 'a"b',
        "Y": 3,
        "Z": False,
    }


class _Exploding:
    name = "boom"

    def __init__(self):
        self.calls = 0

    def on_reading(self, reading, epoch, extras):
        self.calls += 1
        raise RuntimeError("sink bug")

    def poll(self, now):
        raise ValueError("poll bug")


def test_a_failing_sink_is_isolated_and_counted():
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)))
    bad = _Exploding()
    rig.app.sinks.insert(0, bad)
    for _ in range(4):
        rig.telegram()
    assert bad.calls == 4
    assert rig.counters.csv_rows == 4  # the CSV sink after it still ran
    # 4 telegrams x (one on_reading + one poll in each of the 4 loop passes)
    assert rig.counters.sink_errors == 4 * (1 + 4) and rig.counters.loop_passes == 16
    assert rig.app.state.last_errors["boom"] == "poll bug"  # poll runs last in a pass


def test_run_resets_only_from_the_outermost_handler():
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)))
    resets = []

    def reset(why):
        resets.append(why)
        raise SystemExit

    rig.app.hw.reset = reset

    def broken():
        raise KeyError("loop bug")

    rig.app.loop_once = broken
    with pytest.raises(SystemExit):
        rig.app.run()
    assert resets == ["fatal KeyError"]
    assert any("fatal: KeyError" in line for line in rig.console.lines)


def test_outputs_after_a_slow_one_go_on_in_the_next_pass_and_none_is_starved():
    """Once a pass has taken ``_SINKS_PASS_MS``, the outputs not yet polled wait for the next
    pass, which starts with them: waits of several outputs never add up in one pass, and an
    output that is slow on every pass starves none of the others."""
    rig = Rig(epoch_from_fields((2026, 6, 25, 8, 0, 0)))
    app = rig.app
    polled = []

    class Fake:
        def __init__(self, name, ms):
            self.name, self.ms = name, ms

        def poll(self, _now):
            polled.append(self.name)
            rig.clock.advance(self.ms)

    app.sinks[:] = [Fake("slow-a", 400), Fake("b", 1), Fake("slow-c", 400), Fake("d", 1)]
    passes = []
    for _ in range(12):
        before = len(polled)
        t0 = rig.clock.ticks_ms()
        app.loop_once()
        passes.append((polled[before:], rig.clock.ticks_ms() - t0))
    print("\n" + "\n".join("%s %d ms" % p for p in passes))
    assert max(ms for _, ms in passes) < 2 * 400  # never both slow ones in one pass
    for name in ("slow-a", "b", "slow-c", "d"):
        assert polled.count(name) >= 5, (name, polled.count(name))


def test_free_heap_is_sampled_once_a_second_not_every_pass():
    """gc.mem_free() walks the whole heap's allocation table on CircuitPython: 0.47 ms per call
    at 2 MiB in the CircuitPython VM on a PC (bench/board_bench.py: the idle pass cost 230 us
    there, 1 us on CPython), far more on the board's PSRAM. The loop runs thousands of passes a
    second; the low-water mark needs one sample a second (and one after each telegram)."""
    rig = Rig(epoch_from_fields((2024, 5, 1, 10, 0, 0)))
    calls = []
    free = [100_000]

    def mem_free():
        calls.append(1)
        return free[0]

    rig.app.hw.mem_free = mem_free
    for _ in range(500):  # 500 idle passes in one second
        rig.app.loop_once()
        rig.clock.advance(2)
    assert 1 <= len(calls) <= 2, len(calls)
    rig.telegram(passes=1)  # a telegram: its low point is sampled right after it
    free[0] = 50_000
    before = len(calls)
    rig.telegram(passes=1)
    assert len(calls) - before <= 3
    assert rig.counters.mem_free_min == 50_000
