"""Settings cannot smuggle hidden keys, break the boot or leak (issue 13, findings 2, 6, 7, 8).

The override file the web settings page writes is read back by the same code the board boots
with (``smartmeter.overrides``; the simulator uses it too), on a real folder standing for the SD
card. The web tests run the real server on localhost.
"""

import base64
import os
import socket
import urllib.error
import urllib.request

import pytest
from _support import Actions
from servers import free_port

from sim.hardware import ManualClock
from sim.run import Simulation
from smartmeter import config as config_mod
from smartmeter import overrides
from smartmeter.datalog.sd import RealFS, Storage
from smartmeter.state import State
from smartmeter.web.server import WebServer

PASSWORD = "correct-horse-1"
CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\u2028", "\u2029"]
SIM = {"METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB", "LOG_DIR": "/sd/logs"}


def card(tmp_path):
    root = tmp_path / "card"
    (root / "sd" / "logs").mkdir(parents=True)
    return root, RealFS(root=str(root), fsync=False)


class Web:
    """The real web server on localhost, polled from a thread like the loop does."""

    def __init__(self, tmp_path, values):
        import threading

        self.root, self.fs = card(tmp_path)
        base = {"WEB_PORT": free_port(), "WEB_PASSWORD": PASSWORD}
        base.update(values)
        self.config = config_mod.load(lambda _n: None, base)
        self.state = State()
        self.storage = Storage(
            self.fs, None, self.config.LOG_DIR, ManualClock(), self.config.LOG_MIN_FREE_MB
        )
        self.storage.begin()
        self.web = WebServer(self.config, self.state, socket, self.storage, Actions(), _Wall())
        self.web.start("127.0.0.1")
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        import time

        while not self.stop:
            self.web.poll()
            time.sleep(0.001)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.web.stop()

    def request(self, path, method="GET", data=None, password=PASSWORD, headers=None):
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.config.WEB_PORT, path), data=data, method=method
        )
        token = base64.b64encode(("admin:" + password).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


class _Wall:
    def ticks_ms(self):
        import time

        return int(time.monotonic() * 1000) & 0x1FFFFFFF


def boot(tmp_path, values=None):
    """Boot the simulator on the card in ``tmp_path/sim`` (it reads the override file as the
    board does) and return its Config."""
    v = dict(SIM, WEB_PORT=free_port())
    v.update(values or {})
    sim = Simulation(
        v,
        data_dir=str(tmp_path / "sim"),
        clock=ManualClock(1_717_000_000),
        display="none",
        quiet=True,
        web=False,
    )
    sim.close()
    return sim.config


def sim_card(tmp_path):
    fs = RealFS(root=str(tmp_path / "sim"), fsync=False)
    (tmp_path / "sim" / "sd").mkdir(parents=True, exist_ok=True)
    return fs


# -- one writer, every control character escaped ----------------------------------------------
@pytest.mark.parametrize("ch", CONTROL, ids=lambda c: "U+%04X" % ord(c))
def test_every_control_character_round_trips_without_a_hidden_key(ch):
    value = "user%sLOG_MIN_FREE_MB = 1000000%s" % (ch, ch)
    text = config_mod.dump_toml({"MQTT_USER": value, "WEB_PORT": 8080})
    assert text.count("\n") == 2  # one line per key, whatever the value holds
    values, problems = config_mod.parse_toml(text)
    assert not problems
    assert values == {"MQTT_USER": value, "WEB_PORT": 8080}


def test_control_characters_are_refused_as_values():
    for ch in CONTROL:
        cfg = config_mod.load(lambda _n: None, {"MQTT_USER": "a%sb" % ch, "WEB_USER": "x%sy" % ch})
        assert cfg.MQTT_USER == "" and cfg.WEB_USER == "admin"
        assert any(p.startswith("MQTT_USER must not contain control") for p in cfg.problems)


def test_settings_page_refuses_a_carriage_return_injection(tmp_path):
    w = Web(tmp_path, {})
    try:
        form = b"MQTT_USER=me%0DLOG_MIN_FREE_MB+%3D+1000000%0DWEB_PORT+%3D+1"
        status, body = w.request("/settings", "POST", form)
        assert status == 400 and b"MQTT_USER" in body
        assert overrides.load(w.fs).values == {}
        # a good save, then the board's boot reads exactly what was saved: no hidden keys
        status, _ = w.request("/settings", "POST", b"MQTT_USER=me&HOSTNAME=meter-1")
        assert status == 200
        assert overrides.load(w.fs).values == {"MQTT_USER": "me", "HOSTNAME": "meter-1"}
    finally:
        w.close()


# -- validated for where they are used ---------------------------------------------------------
@pytest.mark.parametrize(
    "name,bad,good",
    [
        ("HOSTNAME", "a" * 27, "a" * 26),  # <HOSTNAME>-setup must fit the AP's 32 bytes
        ("HOSTNAME", "meter\x00x", "meter-x"),
        ("HOSTNAME", "<b>meter</b>", "meter"),
        ("HOSTNAME", "zähler", "zaehler"),
        ("GRAPHITE_PREFIX", "home\nevil.metric 1 0", "home.meter_1"),
        ("GRAPHITE_PREFIX", "home meter", "home-meter"),
        ("MQTT_BASE_TOPIC", "home/#", "home/meter"),
        ("MQTT_BASE_TOPIC", "home/+/x", "home/x"),
        ("MQTT_DISCOVERY_PREFIX", "ha#", "homeassistant"),
        ("WEB_PASSWORD", "Zq7", "abcdefgh"),
        ("WEB_PASSWORD", "x" * 65, "x" * 64),
        ("WEB_PASSWORD", "x" * 3100, "x" * 8),
        ("AP_PASSWORD", "short", "x" * 63),
        ("AP_PASSWORD", "x" * 64, "x" * 8),
        ("WEB_USER", "ad:min", "admin2"),
        ("MQTT_HOST", "broker lan", "broker.lan"),
        ("INFLUX_URL", "ftp://influx:8086", "http://192.168.1.10:8086"),
        ("INFLUX_URL", "http://in flux", "https://influx.lan"),
        ("LOG_DIR", "sd-logs", "/sd/logs"),
        ("LOG_DIR", "/sd/.smartmeter", "/sd"),
        ("LOG_DIR", "/sd/../x", "/sd/my_logs"),
    ],
)
def test_values_are_checked_for_their_use(name, bad, good):
    cfg = config_mod.load(lambda _n: None, {name: bad})
    assert getattr(cfg, name) == config_mod.SCHEMA[name][1]  # the default stays
    assert [p for p in cfg.problems if p.startswith(name + " ")], cfg.problems
    assert bad not in " ".join(cfg.problems)  # the value is never echoed
    ok = config_mod.load(lambda _n: None, {name: good})
    assert getattr(ok, name) == good and not ok.problems, ok.problems


def test_ap_name_always_fits(tmp_path):
    from sim.hardware import SimRadio
    from smartmeter.netsetup import NetSetup

    for hostname in ("a" * 26, "a" * 40):
        cfg = config_mod.load(lambda _n: None, {"HOSTNAME": hostname})
        setup = NetSetup(cfg, State(), SimRadio(connected=False), ManualClock())
        assert len(setup.ssid.encode()) <= 32


def test_a_3100_character_password_does_not_lock_everyone_out(tmp_path):
    w = Web(tmp_path, {"WEB_PASSWORD": "p" * 3100})
    try:
        generated = w.state.web_password_generated
        assert generated  # the bad setting is reported and the board falls back to its own
        assert any(p.startswith("WEB_PASSWORD") for p in w.config.problems)
        assert w.request("/api/status", password=generated)[0] == 200
    finally:
        w.close()


# -- power cuts, bad files, big files ----------------------------------------------------------
def test_a_power_cut_during_a_save_keeps_the_previous_settings(tmp_path):
    fs = sim_card(tmp_path)
    overrides.save(fs, {"HOSTNAME": "first", "WEB_PASSWORD": "first-pass-1"})
    first = overrides.load(fs)
    assert first.values["HOSTNAME"] == "first" and first.seq == 0
    full = overrides.seal(config_mod.dump_toml({"HOSTNAME": "second"}), 1)
    slot = tmp_path / "sim" / config_mod.OVERRIDE_SLOTS[1].lstrip("/")
    for cut in range(len(full)):  # the card lost power after `cut` bytes of the second save
        slot.write_bytes(full[:cut])
        got = overrides.load(fs)
        assert got.values == first.values and not got.problems, cut
    slot.write_bytes(full)
    assert overrides.load(fs).values == {"HOSTNAME": "second"}
    # the next save goes to the other file again: the newest good one always survives
    overrides.save(fs, {"HOSTNAME": "third"})
    assert overrides.load(fs).path == config_mod.OVERRIDE_SLOTS[0]
    assert boot(tmp_path).HOSTNAME == "third"


def test_a_settings_file_that_is_not_utf8_is_reported_and_the_board_boots(tmp_path):
    fs = sim_card(tmp_path)
    overrides.save(fs, {"HOSTNAME": "meter-a"})
    path = tmp_path / "sim" / config_mod.OVERRIDE_SLOTS[0].lstrip("/")
    body = b'HOSTNAME = "meter-\xff\xfe"\n'
    path.write_bytes(body + b"# check 0 %08x\n" % overrides.fnv32(body))
    cfg = boot(tmp_path, {"HOSTNAME": "from-settings-toml"})
    assert cfg.HOSTNAME == "from-settings-toml"  # settings.toml alone
    assert any("not valid UTF-8" in p for p in cfg.problems), cfg.problems


def test_a_legacy_file_that_is_garbage_does_not_stop_the_boot(tmp_path):
    legacy = tmp_path / "sim" / config_mod.LEGACY_OVERRIDE.lstrip("/")
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"\xff\xfe\x00garbage\r\nWEB_PORT = 1\r\n")
    cfg = boot(tmp_path)
    assert cfg.WEB_PORT != 1
    assert any("smartmeter.toml is not valid UTF-8" in p for p in cfg.problems), cfg.problems


def test_no_silent_truncation_past_8_kib(tmp_path):
    fs = sim_card(tmp_path)
    values = {"X_PAD_%03d" % i: "y" * 90 for i in range(110)}  # ~12 KiB of harmless keys
    values["WEB_PASSWORD"] = "at-the-end-1"  # sorts after the padding: the last line
    overrides.save(fs, values)
    path = tmp_path / "sim" / config_mod.OVERRIDE_SLOTS[0].lstrip("/")
    assert os.path.getsize(path) > 8192
    assert boot(tmp_path).WEB_PASSWORD == "at-the-end-1"
    # beyond the stated bound it is reported, not cut
    big = {"X_PAD_%03d" % i: "y" * 90 for i in range(200)}
    with pytest.raises(ValueError):
        overrides.save(fs, big)
    data = overrides.seal(config_mod.dump_toml(big), 5)
    path.write_bytes(data)
    (tmp_path / "sim" / config_mod.OVERRIDE_SLOTS[1].lstrip("/")).unlink(missing_ok=True)
    cfg = boot(tmp_path)
    assert cfg.WEB_PASSWORD == ""
    assert any("larger than 16 KiB" in p for p in cfg.problems), cfg.problems


# -- never servable, whatever LOG_DIR is -------------------------------------------------------
def test_settings_files_are_never_served_even_with_log_dir_sd(tmp_path):
    w = Web(tmp_path, {"LOG_DIR": "/sd", "WEB_PASSWORD": ""})
    try:
        generated = w.state.web_password_generated
        status, _ = w.request("/settings", "POST", b"MQTT_PASSWORD=mqtt-secret-99", generated)
        assert status == 200
        sd = w.root / "sd"
        legacy = sd / "smartmeter.toml"
        legacy.write_text('MQTT_PASSWORD = "legacy-secret-1"\n')
        (sd / "webpass.txt").write_text("legacy-pass-12")
        (sd / "2024-01-01.csv").write_bytes(b"Zeit;A+ Wh\r\n")
        listing = w.request("/api/files", password=generated)[1]
        assert b"2024-01-01.csv" in listing
        assert b"smartmeter" not in listing and b"webpass" not in listing
        assert b"settings-" not in listing
        for name in (
            "smartmeter.toml",
            "SMARTMETER.TOML",
            "webpass.txt",
            ".smartmeter/settings-1.toml",
            ".smartmeter%2Fsettings-1.toml",
            ".smartmeter/webpass.txt",
        ):
            status, body = w.request("/logs/" + name, password=generated)
            assert status in (400, 404), name
            assert b"secret" not in body and generated.encode() not in body
        for name in ("smartmeter.toml", "SmartMeter.toml", "webpass.txt"):
            status, _ = w.request(
                "/upload?name=" + name, "POST", b'MQTT_PASSWORD = "x"\n', generated
            )
            assert status == 400, name
        assert legacy.read_text() == 'MQTT_PASSWORD = "legacy-secret-1"\n'
        status, _ = w.request("/delete", "POST", b"name=smartmeter.toml", generated)
        assert status == 404 and legacy.exists()
    finally:
        w.close()


def test_boot_and_web_page_use_the_same_file(tmp_path):
    w = Web(tmp_path, {})
    try:
        assert w.request("/settings", "POST", b"HOSTNAME=same-file")[0] == 200
    finally:
        w.close()
    # the simulator's card is the web test's card: boot from it
    os.rename(tmp_path / "card", tmp_path / "sim")
    assert boot(tmp_path).HOSTNAME == "same-file"


def test_settings_file_code_runs_on_micropython(run_micropython):
    script = (
        "from smartmeter import config, overrides\n"
        "v = {'MQTT_USER': 'a\\rB = 1\\u2028\\x00', 'WEB_PORT': 8080, 'MQTT_TLS': True}\n"
        "data = overrides.seal(config.dump_toml(v), 7)\n"
        "text, seq = overrides.unseal(data)\n"
        "got, problems = config.parse_toml(text)\n"
        "assert got == v and not problems and seq == 7, (got, problems)\n"
        "try:\n"
        "    overrides.unseal(data[:-3] + b'0\\n')\n"
        "    raise SystemExit('no error')\n"
        "except ValueError:\n"
        "    pass\n"
        "cfg = config.load(lambda n: None, {'HOSTNAME': 'a' * 27, 'GRAPHITE_PREFIX': 'a\\nb'})\n"
        "print(len(cfg.problems), cfg.HOSTNAME, cfg.GRAPHITE_PREFIX)\n"
    )
    rc, out, err = run_micropython(script, files=["smartmeter"])
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == "2 smartmeter smartmeter"
