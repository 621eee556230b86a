"""Nothing uploaded through the web page can erase the logs or stop them (issue 13, 3 and 4).

A card with a real capacity (``SmallCard``: free space = capacity minus the bytes of the files
on it) under the real web server and the real CSV log; the simulator for the logging runs.
"""

import socket

import pytest
from test_settings_safety import PASSWORD, Web

from sim.hardware import ManualClock
from sim.run import Simulation
from smartmeter.datalog import sd
from smartmeter.datalog.csvlog import CsvLog
from smartmeter.datalog.sd import RealFS, Storage

MB = 1 << 20
EPOCH = 1_717_000_000  # 2024-05-29 16:26:40 UTC, 18:26 in Vienna
TODAY = "2024-05-29"
KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


class SmallCard(Storage):
    """A card of ``capacity`` bytes: free space is what the files on it leave."""

    capacity = 0

    def refresh_space(self):
        root = self.fs.real("/sd")
        used = 0
        import os

        for folder, _dirs, files in os.walk(root):
            for name in files:
                used += os.path.getsize(os.path.join(folder, name))
        self.free_bytes = max(0, self.capacity - used)
        self.total_bytes = self.capacity
        return self.free_bytes


def raw_upload(port, name, length, body=b""):
    """POST /upload with ``Content-Length: length`` and ``body``; the status line, or None when
    the server did not answer within 2 s (it waits for the body)."""
    import base64

    token = base64.b64encode(("admin:" + PASSWORD).encode()).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        s.sendall(
            (
                "POST /upload?name=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Basic %s\r\n"
                "Content-Length: %d\r\n\r\n" % (name, port, token, length)
            ).encode()
            + body
        )
        try:
            data = s.recv(200)
        except TimeoutError:
            return None
        return data.split(b"\r\n", 1)[0].decode()
    finally:
        s.close()


@pytest.fixture
def card_web(tmp_path, monkeypatch):
    SmallCard.capacity = 0
    monkeypatch.setattr("test_settings_safety.Storage", SmallCard)
    w = Web(tmp_path, {"LOG_MIN_FREE_MB": 100})
    logs = w.root / "sd" / "logs"
    for day in range(20, 30):
        (logs / ("2024-05-%02d.csv" % day)).write_bytes(b"Zeit;A+ Wh\r\n" + b"x" * 1000)
    SmallCard.capacity = 10 * 1010 + 150 * MB + 12  # 150 MiB free
    yield w
    w.close()


def test_an_upload_that_would_eat_into_log_min_free_is_refused(card_web):
    w = card_web
    logs = w.root / "sd" / "logs"
    before = sorted(p.name for p in logs.iterdir())
    status = raw_upload(w.config.WEB_PORT, "big.bin", 60 * MB)  # would leave 90 of the 100 MiB
    assert status is not None and status.split()[1] == "507", status
    assert not (logs / "big.bin").exists()
    w.storage.retention()
    assert sorted(p.name for p in logs.iterdir()) == before  # no day deleted
    # one that leaves LOG_MIN_FREE_MB free is stored, and retention still deletes nothing
    body = b"y" * (2 * MB)
    assert raw_upload(w.config.WEB_PORT, "small.bin", len(body), body).split()[1] == "201"
    assert w.storage.retention() == 0
    assert sorted(p.name for p in logs.iterdir()) == sorted(before + ["small.bin"])


@pytest.mark.parametrize(
    "name",
    [TODAY + ".csv", TODAY + "-99.csv", TODAY + "-2.CSV", "2099-01-01.csv", "usage-a.bin"],
)
def test_names_the_log_uses_cannot_be_uploaded(card_web, name):
    status = raw_upload(card_web.config.WEB_PORT, name, 5, b"hello")
    assert status.split()[1] == "400", status
    path = card_web.root / "sd" / "logs" / name
    assert not path.exists() or b"hello" not in path.read_bytes()


def test_retention_never_deletes_today_also_at_boot(tmp_path):
    root = tmp_path / "card"
    logs = root / "sd" / "logs"
    logs.mkdir(parents=True)
    header = b"Zeit;UTC-Offset;A+ Wh\r\n"
    for day in range(25, 30):
        (logs / ("2024-05-%02d.csv" % day)).write_bytes(
            header + b"29.05.2024 00:00:00;+02:00;1\r\n"
        )
    fs = RealFS(root=str(root), fsync=False)
    for clock in (ManualClock(EPOCH), ManualClock()):  # the clock set, and not yet (no NTP)
        SmallCard.capacity = 1  # a full card: retention wants to delete everything
        st = SmallCard(fs, None, "/sd/logs", clock, min_free_mb=100)
        log = CsvLog(st)
        log.start()
        assert (logs / (TODAY + ".csv")).exists(), st.deleted
    assert sorted(p.name for p in logs.iterdir()) == [TODAY + ".csv"]


def _sim(tmp_path, epoch):
    values = {"METER_KEY": KEY, "LOG_DIR": "/sd/logs", "LOG_MIN_FREE_MB": 1}
    return Simulation(
        values,
        data_dir=str(tmp_path / "data"),
        clock=ManualClock(epoch),
        display="none",
        quiet=True,
        web=False,
    )


def _run(sim, telegrams):
    for _ in range(telegrams):
        for _ in range(5):
            sim.step()
            sim.clock.advance(1000)
    for _ in range(5):
        sim.app.loop_once()


@pytest.mark.parametrize("when", ["today", "tomorrow"])
def test_a_foreign_part_file_does_not_stop_logging(tmp_path, when):
    logs = tmp_path / "data" / "sd" / "logs"
    logs.mkdir(parents=True)
    # a file someone put there with the name of a day part (copied over USB, an old firmware)
    epoch = EPOCH if when == "today" else 1_717_019_700  # tomorrow: 23:55 local, 6 min to midnight
    date = TODAY if when == "today" else "2024-05-30"
    (logs / (date + "-99.csv")).write_bytes(b"my own notes, not a log\r\n")
    sim = _sim(tmp_path, epoch)
    _run(sim, 3)
    sim.close()
    sim = _sim(tmp_path, epoch + 20)  # a reboot does not change it
    _run(sim, 100 if when == "tomorrow" else 4)
    sim.close()
    c = sim.app.state.counters
    st = sim.app.state
    assert c.csv_rows == sim.sent and c.csv_lost == 0, sim.summary()
    assert st.sd_state == "ok"
    names = sorted(p.name for p in logs.iterdir())
    assert (date + ".csv") in names, names
    assert (logs / (date + "-99.csv")).read_bytes() == b"my own notes, not a log\r\n"


def test_the_web_page_can_delete_a_foreign_part_file(card_web):
    w = card_web
    logs = w.root / "sd" / "logs"
    (logs / "2024-05-29-99.csv").write_bytes(b"notes\r\n")
    w.storage.writing = "2024-05-29.csv"
    status, _ = w.request("/delete", "POST", b"name=2024-05-29-99.csv")
    assert status == 200 and not (logs / "2024-05-29-99.csv").exists()
    status, _ = w.request("/delete", "POST", b"name=2024-05-29.csv")
    assert status == 409 and (logs / "2024-05-29.csv").exists()  # the file being written


def test_own_names_cover_the_usage_summary_slots():
    from smartmeter.datalog import usagelog

    assert set(usagelog.SLOTS) <= set(sd.OWN_NAMES)
    assert sd.is_own_name("2024-05-29-99.csv") and sd.is_own_name("USAGE-B.BIN")
    assert not sd.is_own_name("notes.csv")


@pytest.mark.parametrize(
    "content",
    [
        b"Zeit;UTC-Offset;A+ Wh\r\n",  # our header, other columns: rows need a new part
        b"Zeit;UTC-Offset;A+ Wh\r\n29.05.2024 23:59:59;+02:00;5\r\n",  # and a later row
    ],
)
def test_a_part_file_numbered_999_does_not_stop_logging(tmp_path, content):
    """Issue 18.7: a foreign ``<today>-999.csv`` with our header left no number after it ("too
    many part files", 0 of 5 telegrams logged). A free number below is used instead."""
    logs = tmp_path / "data" / "sd" / "logs"
    logs.mkdir(parents=True)
    (logs / (TODAY + "-999.csv")).write_bytes(content)
    sim = _sim(tmp_path, EPOCH)
    _run(sim, 5)
    sim.close()
    c = sim.app.state.counters
    print("\n%s-999.csv present: %d of %d telegrams logged" % (TODAY, c.csv_rows, sim.sent))
    assert sim.sent >= 5 and c.csv_rows == sim.sent and c.csv_lost == 0, sim.summary()
    assert sim.app.state.sd_state == "ok"
    assert (logs / (TODAY + "-999.csv")).read_bytes() == content
    sim = _sim(tmp_path, EPOCH + 60)  # a reboot appends to the same part, starts no new one
    _run(sim, 2)
    sim.close()
    names = sorted(p.name for p in logs.iterdir() if p.name.startswith(TODAY))
    assert names == [TODAY + "-999.csv", TODAY + ".csv"], names


def _log_rows(w, n, start=EPOCH):
    """``n`` rows of the real CSV log on the web test's card (a telegram every 5 s)."""
    from test_csvlog import EXTRAS, kaifa

    from smartmeter.timeutil import fields_from_epoch

    log = CsvLog(w.storage)
    for i in range(n):
        t = fields_from_epoch(start + 7200 + 5 * i)[:6]  # CEST: local = UTC + 2 h
        assert log.write(kaifa(t, off=120, a_plus=i), None, EXTRAS)
    log._drop()


def _days(logs):
    return sorted(p.name for p in logs.iterdir() if sd.is_log_name(p.name))


@pytest.fixture
def tight_card(tmp_path, monkeypatch):
    """10 log days of 10 KB on a card with 1 MiB + 400 KB free and LOG_MIN_FREE_MB 1."""
    SmallCard.capacity = 0
    monkeypatch.setattr("test_settings_safety.Storage", SmallCard)
    w = Web(tmp_path, {"LOG_MIN_FREE_MB": 1})
    logs = w.root / "sd" / "logs"
    for day in range(19, 29):
        (logs / ("2024-05-%02d.csv" % day)).write_bytes(b"Zeit;A+ Wh\r\n" + b"x" * 9988)
    SmallCard.capacity = 10 * 10000 + MB + 400_000
    yield w
    w.close()


def test_an_upload_never_makes_retention_delete_a_log_day(tight_card):
    """Issue 18.6: an upload that left exactly LOG_MIN_FREE_MB free was accepted; logging then
    took the card below the minimum and the next boot's retention deleted the oldest log day.
    An upload must leave a month of logging (31 x the largest recent day) on top."""
    w = tight_card
    logs = w.root / "sd" / "logs"
    before = _days(logs)
    free = w.storage.refresh_space()
    body = b"u" * (free - MB)  # leaves exactly LOG_MIN_FREE_MB
    status = raw_upload(w.config.WEB_PORT, "photo.jpg", len(body), body)
    _log_rows(w, 200)  # about 20 KB: a few hours of logging
    w.storage.protect = ()
    CsvLog(w.storage).start()  # the next boot: its retention
    deleted = sorted(set(before) - set(_days(logs)))
    print(
        "\nupload leaving exactly LOG_MIN_FREE_MB: %s; log days deleted after logging and a"
        " boot: %d %s" % (status, len(deleted), deleted)
    )
    assert status.split()[1] == "507", status
    assert deleted == []


def test_retention_deletes_uploaded_files_before_any_log_day(tight_card):
    """An upload that left a month of logging free, and then more logging than that: the room
    the logs need comes back from the uploads first, never from a log day."""
    w = tight_card
    logs = w.root / "sd" / "logs"
    before = _days(logs)
    free = w.storage.refresh_space()
    reserve = MB + 31 * 10000
    body = b"u" * (free - reserve - 1000)
    assert raw_upload(w.config.WEB_PORT, "old.bin", 1000, b"o" * 1000).split()[1] == "201"
    assert raw_upload(w.config.WEB_PORT, "photo.jpg", len(body), body).split()[1] == "201"
    (logs / "notes").mkdir()  # a folder is never deleted
    _log_rows(w, 3000)  # ~300 KB: more than the month the reserve was made for
    w.storage.protect = ()
    CsvLog(w.storage).start()
    after = sorted(p.name for p in logs.iterdir())
    print("\nafter logging past the reserve and a boot: %s" % after)
    assert set(before) <= set(after)  # no log day deleted
    assert "old.bin" not in after and (logs / "notes").is_dir()  # the oldest upload went first
    assert w.storage.uploads_deleted >= 1 and w.storage.refresh_space() >= MB
