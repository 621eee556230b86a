"""SD card state machine, remount backoff, free space and retention (smartmeter.datalog.sd)."""

import pytest
from fakefs import EIO, ENODEV, ENOSPC, FakeFS
from mpy import run_micropython

from smartmeter.datalog.sd import EROFS, RealFS, Storage, part_of
from smartmeter.timeutil import ticks_diff

LOG = "/sd/logs"


class Clock:
    def __init__(self, ms=0):
        self.ms = ms

    def ticks_ms(self):
        return self.ms & 0x1FFFFFFF


def card(**kw):
    fs = FakeFS(**kw)
    fs.mkdir("/sd")
    return fs


def test_first_mount_creates_the_log_dir_and_reports_true_free_space():
    fs = card(capacity=1_000_000)
    fs.add_file("/sd/big.bin", b"x" * 250_000)
    st = Storage(fs, mount=fs.mount, log_dir=LOG + "/", clock=Clock(), min_free_mb=0)
    assert st.state == "missing"  # until the first mount
    assert st.begin()
    assert st.state == "ok" and LOG in fs.dirs
    assert st.total_bytes == 1_000_000 // 512 * 512
    assert st.free_bytes == (1_000_000 - 250_000) // 512 * 512  # free, not total (original bug)
    assert st.generation == 1 and st.remounts == 0


def test_no_card_configured_is_disabled():
    st = Storage(None)
    assert st.state == "disabled"
    assert not st.begin() and not st.available()
    assert st.list_days() == []


@pytest.mark.parametrize(
    "code, state", [(ENOSPC, "full"), (EIO, "error"), (EROFS, "error"), (ENODEV, "missing")]
)
def test_fault_classification(code, state):
    fs = card()
    st = Storage(fs, mount=fs.mount, log_dir=LOG, clock=Clock())
    st.begin()
    st.fault(OSError(code, "x"))
    assert st.state == state
    assert st.faults == 1 and str(code) in st.last_error


def test_eio_with_the_card_gone_counts_as_missing():
    fs = card()
    st = Storage(fs, mount=fs.mount, log_dir=LOG, clock=Clock())
    st.begin()
    fs.remove_card()
    st.fault(OSError(EIO, "stale handle"))
    assert st.state == "missing"


def test_remount_backoff_doubles_to_30s_and_resets_after_success():
    clock = Clock(ms=0x1FFFFFFF - 5000)  # the ticks wrap during the test
    fs = card()
    st = Storage(fs, mount=fs.mount, log_dir=LOG, clock=clock)
    st.begin()
    fs.remove_card()
    st.fault(OSError(ENODEV, "gone"))
    attempts = []
    for step in range(0, 200_000, 100):
        clock.ms = 0x1FFFFFFF - 5000 + step
        if step == 150_000:
            fs.insert_card()
        n = st.mount_attempts
        st.available()
        if st.mount_attempts != n:
            attempts.append(step)
        if st.state == "ok":
            break
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert attempts[0] == 2000
    assert gaps[:5] == [4000, 8000, 16000, 30000, 30000]
    assert max(gaps) == 30000
    assert st.state == "ok" and st.remounts == 1 and st.generation == 2
    assert 150_000 <= attempts[-1] <= 180_000
    # Backoff starts again at 2 s after the next fault.
    fs.remove_card()
    st.fault(OSError(EIO, "x"))
    n = st.mount_attempts
    clock.ms += 1999
    assert not st.available() and st.mount_attempts == n  # still waiting
    clock.ms += 1
    assert not st.available() and st.mount_attempts == n + 1  # tried after exactly 2 s


def test_mount_callable_raising_anything_is_missing_not_a_crash():
    def mount():
        raise RuntimeError("SDIO pins in use")

    st = Storage(card(), mount=mount, log_dir=LOG, clock=Clock())
    assert not st.begin()
    assert st.state == "missing" and "RuntimeError" in st.last_error
    assert not st.available()  # backing off, no second attempt yet
    assert st.mount_attempts == 1


def test_full_card_resumes_when_space_appears():
    fs = card(capacity=100_000)
    st = Storage(fs, mount=fs.mount, log_dir=LOG, clock=Clock(), min_free_mb=0)
    st.begin()
    fs.add_file("/sd/other.bin", b"x" * 95_000)
    st.fault(OSError(ENOSPC, "full"))
    assert not st.available() and st.state == "full"
    fs.remove("/sd/other.bin")
    assert st.available() and st.state == "ok"


def _days(fs, n, size, month=4):
    names = ["2024-%02d-%02d.csv" % (month, d) for d in range(1, n + 1)]
    for name in names:
        fs.add_file(LOG + "/" + name, b"x" * size)
    return names


def test_retention_deletes_oldest_days_first_and_never_today():
    fs = card(capacity=1_000_000)
    fs.mkdir(LOG)
    names = _days(fs, 8, 100_000)
    fs.add_file(LOG + "/2024-04-02-2.csv", b"x" * 50_000)
    fs.add_file(LOG + "/.keep", b"x" * 1_000)  # a dot-file: never touched
    st = Storage(fs, mount=fs.mount, log_dir=LOG, clock=Clock(), min_free_mb=350_000 / 1048576)
    st.begin()
    assert st.free_bytes < 350_000
    deleted = st.retention(protect=("2024-04-08",))
    left = sorted(fs.listdir(LOG))
    assert deleted == 3
    assert left == [".keep"] + names[2:]  # 04-01, 04-02, 04-02-2 gone, oldest first
    assert st.free_bytes >= 350_000


def test_retention_deletes_uploads_before_log_days():
    fs = card(capacity=1_000_000)
    fs.mkdir(LOG)
    names = _days(fs, 8, 100_000)
    fs.add_file(LOG + "/notes.txt", b"x" * 80_000)  # not written by the log: an upload
    fs.add_file(LOG + "/usage-a.bin", b"x" * 10_000)  # the log's own: kept
    fs.mkdir(LOG + "/folder")  # a folder: kept
    st = Storage(fs, mount=fs.mount, log_dir=LOG, clock=Clock(), min_free_mb=150_000 / 1048576)
    st.begin()
    assert st.free_bytes < 150_000
    assert st.retention(protect=("2024-04-08",)) == 0  # no log day deleted
    assert sorted(fs.listdir(LOG)) == sorted(names + ["folder", "usage-a.bin"])
    assert st.uploads_deleted == 1 and st.free_bytes >= 150_000


def test_retention_loop_ends_when_only_protected_files_remain():
    fs = card(capacity=300_000)
    fs.mkdir(LOG)
    _days(fs, 2, 100_000)
    fs.add_file(LOG + "/2024-04-03.csv", b"x" * 90_000)
    st = Storage(fs, mount=fs.mount, log_dir=LOG, clock=Clock(), min_free_mb=1)
    st.begin()
    st.protect = ("2024-04-03",)
    assert st.retention() == 2
    assert fs.listdir(LOG) == ["2024-04-03.csv"]
    assert st.retention() == 0  # still below the minimum, nothing deletable: returns
    assert fs.calls["remove"] == 2


def test_list_days_sorted_by_date_then_part_newest_first():
    fs = card()
    fs.mkdir(LOG)
    for name in (
        "2024-04-02.csv",
        "2024-04-02-10.csv",
        "2024-04-02-2.csv",
        "2024-03-31.csv",
        "2024-4-1.csv",
        "readme.csv",
        "2024-04-02-x.csv",
    ):
        fs.add_file(LOG + "/" + name, name.encode())
    st = Storage(fs, log_dir=LOG, clock=Clock())
    st.begin()
    assert [n for n, _ in st.list_days()] == [
        "2024-04-02-10.csv",
        "2024-04-02-2.csv",
        "2024-04-02.csv",
        "2024-03-31.csv",
    ]
    assert st.list_days()[0][1] == len("2024-04-02-10.csv")
    assert part_of("2024-04-02.csv") == 1 and part_of("2024-04-02-10.csv") == 10


def test_ticks_diff_wraps_like_circuitpython():
    assert ticks_diff(5, 0x1FFFFFFF - 4) == 10
    assert ticks_diff(0x1FFFFFFF - 4, 5) == -10
    assert ticks_diff(3_000_000_000, 2_999_990_000) == 10_000  # non-wrapping source


def test_realfs_on_a_pc_folder(tmp_path):
    fs = RealFS()
    st = Storage(fs, log_dir=str(tmp_path / "logs"), clock=Clock(), min_free_mb=0)
    assert st.begin() and (tmp_path / "logs").is_dir()
    path = st.path("2024-04-02.csv")
    f = fs.open(path, "ab")
    assert f.write(b"abc\r\n") == 5
    f.flush()
    fs.sync(f)
    f.close()
    assert fs.truncate(path, 3) and fs.stat(path)[6] == 3
    assert st.list_days() == [("2024-04-02.csv", 3)]
    assert 0 < st.free_bytes <= st.total_bytes


_MP_SCRIPT = """
import os
from smartmeter.datalog.sd import RealFS, Storage
from smartmeter.datalog.csvlog import CsvLog, read_rows
from smartmeter.protocol.reading import Reading, A_PLUS, U_L1, I_L1, P_PLUS

def reading(t, a):
    r = Reading()
    r.meter_time = t
    r.utc_offset = 120
    r.values = {A_PLUS: a, P_PLUS: 230, U_L1: 229.9, I_L1: 1.25}
    return r

os.mkdir("/app/logs")
class Clock:
    def ticks_ms(self):
        return 0

st = Storage(RealFS(), log_dir="/app/logs", clock=Clock(), min_free_mb=0)
log = CsvLog(st, energy_offset_wh=5)
log.start()
print(st.state, st.free_bytes > 0)
print(log.write(reading((2024, 10, 26, 23, 59, 55), 1), None, {"rssi": -60}))
print(log.write(reading((2024, 10, 27, 0, 0, 0), 2), None, {"temperature": 21.5}))
f = open("/app/logs/2024-10-27.csv", "ab")
f.write(b"27.10.2024 00:00:05;+02:0")
f.close()
log2 = CsvLog(st, energy_offset_wh=5)
print(log2.start(), log2.repairs)
print(log2.write(reading((2024, 10, 27, 0, 0, 10), 3), None, None))
print(sorted(os.listdir("/app/logs")))
for name, size in st.list_days():
    for epoch, values in read_rows(st, name):
        print(name, epoch, values[A_PLUS], values.get("rssi"), values.get("temperature"))
print(repr(open("/app/logs/2024-10-27.csv", "rb").read().split(b"\\n")[-3:]))
"""


def test_runs_on_micropython():
    rc, out, err = run_micropython(_MP_SCRIPT, files=["smartmeter"])
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[:5] == ["ok True", "True", "True", "2 1", "True"]
    assert lines[5] == "['2024-10-26.csv', '2024-10-27.csv']"
    assert lines[6:9] == [
        "2024-10-27.csv 1729980000 7 None 21.5",
        "2024-10-27.csv 1729980010 8 None None",
        "2024-10-26.csv 1729979995 6 -60 None",
    ]
    # No truncate on MicroPython: the torn tail became a blank line, the next row follows it.
    assert lines[9].startswith("[b'" + " " * 24 + "', b'27.10.2024 00:00:10;+02:00;8;")


def test_retention_never_deletes_settings_beside_the_logs(tmp_path):
    """LOG_DIR = "/sd": an older firmware's settings and password files are not uploads."""
    from sim.hardware import ManualClock
    from smartmeter import config as config_mod
    from smartmeter.datalog.csvlog import CsvSink

    class Hw:
        pass

    hw = Hw()
    hw.fs = card(capacity=400_000)
    hw.mount = hw.fs.mount
    hw.clock = ManualClock()
    hw.fs.add_file(config_mod.LEGACY_OVERRIDE, b"x" * 1000)
    hw.fs.add_file(config_mod.LEGACY_WEB_PASSWORD, b"x" * 1000)
    hw.fs.add_file("/sd/photo.jpg", b"x" * 1000)
    cfg = config_mod.load(lambda _n: None, {"LOG_DIR": "/sd", "LOG_MIN_FREE_MB": 1})
    sink = CsvSink(hw, cfg, __import__("smartmeter.state").state.State())
    sink.storage.retention()
    left = sorted(hw.fs.listdir("/sd"))
    assert "photo.jpg" not in left and "smartmeter.toml" in left and "webpass.txt" in left


def test_an_upload_deleted_by_retention_is_told():
    """Retention deleting an upload to keep logging says which one: /api/status (sd) and the
    Files page read it (the count alone told the user nothing)."""
    import json

    from smartmeter.datalog.csvlog import CsvLog
    from smartmeter.state import State
    from smartmeter.web import api

    fs = card(capacity=1_000_000)
    fs.mkdir(LOG)
    _days(fs, 8, 100_000)
    fs.add_file(LOG + "/notes.txt", b"x" * 80_000)  # an upload
    st = Storage(fs, mount=fs.mount, log_dir=LOG, clock=Clock(), min_free_mb=150_000 / 1048576)
    st.begin()
    state = State(0)
    log = CsvLog(st)
    log.publish(state)
    sd = json.loads(api.status_json(state))["sd"]
    assert sd["uploads_deleted"] == 0 and sd["upload_deleted"] is None
    st.retention(protect=("2024-04-08",))
    log.publish(state)
    sd = json.loads(api.status_json(state))["sd"]
    assert sd["uploads_deleted"] == 1 and sd["upload_deleted"] == "notes.txt", sd


def test_day_files_sort_by_date_then_part_as_the_key_says():
    """``sort_log_names`` (plain sort, then each day's parts by key: MicroPython's sort calls a
    key at every comparison) gives the order of ``log_order``, whatever order the card lists."""
    import random

    from smartmeter.datalog.sd import is_log_name, log_order, sort_log_names

    rnd = random.Random(7)
    for _ in range(300):
        names = set()
        for _k in range(rnd.randrange(0, 60)):
            day = "%04d-%02d-%02d" % (
                rnd.choice((2023, 2024)),
                rnd.randrange(1, 13),
                rnd.randrange(1, 4),
            )
            part = rnd.choice(("", "", "", "-2", "-3", "-10", "-11", "-100", "-9"))
            names.add(day + part + ".csv")
        names = list(names)
        assert all(is_log_name(n) for n in names)
        want = sorted(names, key=log_order)
        for start in (list(want), list(reversed(want)), rnd.sample(names, len(names))):
            sort_log_names(start)
            assert start == want
    for bad in ("2024-04-02-.csv", "2024-04-02-1234.csv", "2024-04-0x.csv", "2024-04-02.csv.txt"):
        assert not is_log_name(bad), bad
    for good in ("2024-04-02.csv", "2024-04-02-1.csv", "2024-04-02-999.csv"):
        assert is_log_name(good), good
