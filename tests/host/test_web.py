"""The web interface against real HTTP clients on localhost (smartmeter/web*.py, netsetup.py).

A background thread plays the super-loop: it calls ``WebServer.poll()`` over and over and counts
passes; ``service`` counts the UART pump calls. Every hostile request must get the right status,
no byte of any file outside the log directory, and the loop must keep running.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from _support import REPO_ROOT, Actions

from sim.hardware import SimClock
from smartmeter import config as config_mod
from smartmeter import overrides
from smartmeter.datalog.sd import RealFS, Storage
from smartmeter.netsetup import NetSetup
from smartmeter.protocol.reading import P_MINUS, P_PLUS, Reading
from smartmeter.state import State
from smartmeter.web.server import WebServer

WALL = SimClock()  # the PC's monotonic clock

PASSWORD = "correct-horse-1"
SECRET = b"TOPSECRET-DO-NOT-SERVE"
HEADER = b"Zeit;UTC-Offset;A+ Wh;P+ W\r\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Loop:
    """Runs web.poll() in a thread like the app loop; counts passes and service() calls."""

    def __init__(self, web):
        self.web = web
        self.passes = 0
        self.stop = False
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self.stop:
                self.web.poll(0)
                self.passes += 1
                time.sleep(0.0005)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def wait_passes(self, n=20, timeout=5):
        target = self.passes + n
        end = time.monotonic() + timeout
        while self.passes < target and time.monotonic() < end:
            time.sleep(0.005)
        return self.passes >= target


class Site:
    def __init__(self, tmp_path, values=None, storage_cls=Storage):
        root = tmp_path / "card"
        logs = root / "sd" / "logs"
        logs.mkdir(parents=True)
        (root / "sd" / "settings.toml").write_bytes(b'METER_KEY = "' + SECRET + b'"\n')
        (root / "code.py").write_bytes(SECRET)
        (tmp_path / "outside.txt").write_bytes(SECRET)
        (logs / "2024-01-01.csv").write_bytes(HEADER + b"01.01.2024 00:00:00;+01:00;1;2\r\n")
        (logs / "2024-01-02.csv").write_bytes(HEADER + b"02.01.2024 00:00:00;+01:00;3;4\r\n")
        (logs / "2024-01-02-2.csv").write_bytes(
            b"Zeit;UTC-Offset;A+ Wh\r\n02.01.2024 00:00:01;+01:00;5\r\n"
        )
        (logs / "2024-02-01.csv").write_bytes(HEADER + b"01.02.2024 00:00:00;+01:00;6;7\r\n")
        (logs / "notes.txt").write_bytes(b"hello")
        (logs / "adir").mkdir()
        os.symlink(tmp_path / "outside.txt", logs / "link.csv")
        self.root = root
        self.logs = logs
        base = {
            "WEB_PORT": free_port(),
            "LOG_DIR": "/sd/logs",
            "WEB_PASSWORD": PASSWORD,
            "METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB",
            "MQTT_PASSWORD": "mqtt-secret-77",
        }
        base.update(values or {})
        self.config = config_mod.load(lambda _n: None, base)
        self.state = State()
        self.fs = RealFS(root=str(root), fsync=False)
        self.storage = storage_cls(self.fs, None, "/sd/logs", WALL)
        self.storage.begin()
        self.actions = Actions()
        self.services = 0
        self.web = WebServer(
            self.config, self.state, socket, self.storage, self.actions, WALL, self.service
        )
        self.web.start("127.0.0.1")
        self.port = self.config.WEB_PORT
        self.loop = Loop(self.web)
        self.loop.thread.start()
        self.bodies = []  # every response body, for the secrets check

    def service(self):
        self.services += 1

    def close(self):
        self.loop.stop = True
        self.loop.thread.join(5)
        self.web.stop()
        assert self.loop.error is None

    def request(self, path, method="GET", data=None, auth=True, headers=None, password=PASSWORD):
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method
        )
        if auth:
            token = base64.b64encode(("admin:" + password).encode()).decode()
            req.add_header("Authorization", "Basic " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = r.read()
                status = r.status
                hdrs = r.headers
        except urllib.error.HTTPError as e:
            body = e.read()
            status = e.code
            hdrs = e.headers
        self.bodies.append(body)
        return status, body, hdrs

    def raw(self, data, auth=True, timeout=5.0, slow=None):
        """Send raw bytes (auth header added before the blank line) and read the answer."""
        if auth and b"\r\n\r\n" in data:
            token = base64.b64encode(("admin:" + PASSWORD).encode())
            head, _, body = data.partition(b"\r\n\r\n")
            data = head + b"\r\nAuthorization: Basic " + token + b"\r\n\r\n" + body
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            if slow:
                for i in range(len(data)):
                    s.sendall(data[i : i + 1])
                    time.sleep(slow)
            else:
                s.sendall(data)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, TimeoutError):
                    break
                if not chunk:
                    break
                out += chunk
        except (BrokenPipeError, ConnectionResetError):
            out = b""
        finally:
            s.close()
        self.bodies.append(out)
        return out


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.close()


def _reading(p_in, p_out):
    r = Reading()
    r.meter_time = (2024, 3, 1, 12, 0, 0)
    r.utc_offset = 60
    r.values = {P_PLUS: p_in, P_MINUS: p_out, "1-0:1.8.0": 123456, "1-0:32.7.0": 231.5}
    return r


# -- every route ---------------------------------------------------------------------------
def test_every_route_answers(site):
    st = site.state
    st.latest = _reading(1500, 0)
    st.latest_epoch = 1709290800
    st.latest_ticks = 0
    for i in range(30):
        st.history.add(1709290800 - 60 * (29 - i), 100 * i)
    for path in ("/", "/files", "/settings"):
        status, body, hdrs = site.request(path)
        assert status == 200 and body.startswith(b"<!DOCTYPE html>")
        assert "default-src 'self'" in hdrs["Content-Security-Policy"]
    assert b"fetch(" in site.request("/app.js")[1]
    assert site.request("/app.css")[2]["Content-Type"] == "text/css"
    now = json.loads(site.request("/api/now")[1])
    assert now["reading"]["values"][P_PLUS] == 1500 and now["epoch"] == 1709290800
    status = json.loads(site.request("/api/status")[1])
    assert {"counters", "sd", "network", "uptime_s", "version", "problems"} <= set(status)
    # 7 requests so far (this one too). The counters are copied at the end of a server pass, so
    # an answer may show a count a pass or two old (it did: 4); the state catches up to exactly 7.
    assert 4 <= status["counters"]["http_requests"] <= 7
    end = time.monotonic() + 5
    while st.counters.http_requests < 7 and time.monotonic() < end:
        time.sleep(0.01)
    assert st.counters.http_requests == 7
    again = json.loads(site.request("/api/status")[1])
    assert again["counters"]["http_requests"] >= 6
    hist = json.loads(site.request("/api/history?minutes=10")[1])
    assert len(hist["points"]) == 10 and hist["points"][-1] == [1709290800, 2900]
    assert len(json.loads(site.request("/api/history?minutes=1440")[1])["points"]) == 30
    assert site.request("/api/history?minutes=x")[0] == 400
    files = json.loads(site.request("/api/files")[1])["files"]
    names = [f["name"] for f in files]
    # day files newest first, others after; directory and symlink not listed
    assert names == [
        "2024-02-01.csv",
        "2024-01-02-2.csv",
        "2024-01-02.csv",
        "2024-01-01.csv",
        "notes.txt",
    ]
    assert files[-1]["size"] == 5
    s = json.loads(site.request("/api/settings")[1])
    assert s["values"]["METER_KEY"] is True and s["values"]["MQTT_PASSWORD"] is True
    assert site.request("/logout")[0] == 401


def test_pages_are_the_asset_files_streamed_from_flash(site):
    """Every page, the stylesheet and the script are the files in smartmeter/web/assets/, byte
    for byte, through the fixed allowlist; no other URL reaches that folder."""
    from smartmeter.web import pages

    assets = REPO_ROOT / "smartmeter" / "web" / "assets"
    on_disk = sorted(p.name for p in assets.iterdir())
    assert sorted(f for f, _t in pages.ASSETS.values()) == on_disk  # nothing unlisted, none gone
    for url, name in (("/", "home"), ("/files", "files"), ("/settings", "settings")):
        status, body, hdrs = site.request(url)
        assert status == 200 and body == (assets / pages.ASSETS[name][0]).read_bytes()
        assert hdrs["Content-Type"].startswith("text/html")
        assert int(hdrs["Content-Length"]) == len(body)
        assert b'<html lang="en">' in body and b"<script>" not in body  # CSP: no inline script
    for url, name in (("/app.js", "app.js"), ("/app.css", "app.css")):
        status, body, _h = site.request(url)
        assert status == 200 and body == (assets / name).read_bytes()
    for url in ("/assets/app.js", "/home.html", "/app.js/", "/smartmeter/web/assets/app.js"):
        assert site.request(url)[0] == 404, url
    site.state.ap_mode = True  # the setup access point opens on the settings page
    assert site.request("/")[1] == (assets / "settings.html").read_bytes()


def test_page_script_passes_node_check(require):
    node = shutil.which("node")
    require(node is not None, "node is not installed")
    js = REPO_ROOT / "smartmeter" / "web" / "assets" / "app.js"
    run = subprocess.run([node, "--check", str(js)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_sd_status_reports_free_used_total(site):
    site.state.sd_state = "ok"
    site.state.sd_free = 3_000
    site.state.sd_total = 10_000
    sd = json.loads(site.request("/api/status")[1])["sd"]
    assert sd == {
        "state": "ok",
        "free": 3000,
        "used": 7000,
        "total": 10000,
        "uploads_deleted": 0,
        "upload_deleted": None,
    }


def test_problems_in_words(site):
    from smartmeter.outputs import graphite

    site.state.sd_state = "full"
    site.state.add_sink(graphite.NAME, graphite.PROBLEMS).state = "error"
    body = json.loads(site.request("/api/status")[1])
    texts = [p["text"] for p in body["problems"]]
    assert "SD-Karte voll" in texts and "Graphite nicht erreichbar" in texts  # UI_LANGUAGE=de
    assert body["sinks"]["graphite"]["state"] == "error"
    assert (body["graphite"], body["mqtt"]) == ("error", "disabled")  # the aliases of 0.1


def test_downloads_day_and_month(site):
    status, body, hdrs = site.request("/logs/2024-01-01.csv")
    assert status == 200 and body == (site.logs / "2024-01-01.csv").read_bytes()
    assert 'filename="2024-01-01.csv"' in hdrs["Content-Disposition"]
    status, body, hdrs = site.request("/month/2024-01.csv")
    assert status == 200
    expect = (site.logs / "2024-01-01.csv").read_bytes()
    expect += (site.logs / "2024-01-02.csv").read_bytes()[len(HEADER) :]  # header once
    expect += (site.logs / "2024-01-02-2.csv").read_bytes()  # other columns: own header
    assert body == expect and int(hdrs["Content-Length"]) == len(expect)
    assert body.count(HEADER) == 1
    assert site.request("/month/2023-12.csv")[0] == 404
    assert site.request("/month/xx.csv")[0] == 404
    assert site.request("/logs/missing.csv")[0] == 404


# -- authentication ------------------------------------------------------------------------
PATHS = [
    "/",
    "/files",
    "/settings",
    "/app.js",
    "/app.css",
    "/api/now",
    "/api/status",
    "/api/history",
    "/api/files",
    "/api/settings",
    "/logs/2024-01-01.csv",
    "/month/2024-01.csv",
    "/logs/notes.txt",
    "/nothing",
    "/logs/../../code.py",
]


@pytest.mark.parametrize("password", [None, "wrong", PASSWORD + "x", ""])
def test_auth_required_everywhere(site, password):
    for path in PATHS:
        if password is None:
            status, body, hdrs = site.request(path, auth=False)
        else:
            site.web.forget_guesses()  # (the limits on wrong passwords have their own tests)
            status, body, hdrs = site.request(path, password=password)
        if path.startswith("/logs/.."):
            assert status == 400  # refused before anything else
            continue
        assert status == 401, path
        assert hdrs["WWW-Authenticate"].startswith("Basic")
        assert b"Zeit" not in body and b"hello" not in body and b"<html" not in body
    for path in ("/delete", "/upload?name=x.csv", "/reboot", "/setup", "/settings"):
        status, _, _ = site.request(path, "POST", b"name=2024-01-01.csv", auth=False)
        assert status == 401
    assert (site.logs / "2024-01-01.csv").exists()
    assert not (site.logs / "x.csv").exists()
    assert site.actions.restarts == 0 and site.actions.setups == 0


def test_other_auth_schemes_refused(site):
    for value in ("Bearer " + PASSWORD, "Basic !!!notbase64", "Basic", "Digest x"):
        assert site.request("/", auth=False, headers={"Authorization": value})[0] == 401


# -- traversal -----------------------------------------------------------------------------
TRAVERSALS = [
    b"/../settings.toml",
    b"/%2e%2e/settings.toml",
    b"/..%2fsettings.toml",
    b"/%2E%2E%2Fcode.py",
    b"/logs/..\\..\\code.py",
    b"/logs/%5c..%5ccode.py",
    b"//settings.toml",
    b"/logs//sd/settings.toml",
    b"/logs/%2fsd%2fsettings.toml",
    b"/logs/../settings.toml",
    b"/logs/%2e%2e/settings.toml",
    b"/logs/link.csv",
    b"/logs/adir",
    b"/logs/.hidden",
    b"/logs/webpass.txt",
    b"/logs/%00x",
    b"/month/..%2f..%2fsd.csv",
    b"/logs/2024-01-01.csv%00.txt",
    b"/logs/%252e%252e%252fcode.py",
    b"/sd/settings.toml",
    b"/settings.toml",
    b"/code.py",
    b"logs/2024-01-01.csv",
    b"http://127.0.0.1/logs/../code.py",
    b"/logs/..",
    b"/logs/.",
    b"/logs/%2e",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_refused(site, target):
    resp = site.raw(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(resp) in (400, 403, 404), resp[:80]
    assert SECRET not in resp and b"hello" not in resp and b"Zeit" not in resp
    assert site.loop.wait_passes()


def test_symlinked_log_dir_entry_not_deletable(site):
    status, _, _ = site.request("/delete", "POST", b"name=link.csv")
    assert status == 404 and (site.logs / "link.csv").is_symlink()


# -- hostile requests ----------------------------------------------------------------------
def test_oversized_header_431_and_loop_runs(site):
    resp = site.raw(b"GET / HTTP/1.1\r\nX-Junk: " + b"a" * 65536, auth=False)
    assert status_of(resp) in (431, None)  # answered, or reset while we were still sending
    assert site.loop.wait_passes()
    assert site.request("/api/now")[0] == 200


def test_oversized_body_413(site):
    resp = site.raw(
        b"POST /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1048576\r\n\r\n"
    )
    assert status_of(resp) == 413
    resp = site.raw(
        b"POST /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1048576\r\n\r\n"
        + b"a" * 1048576
    )
    assert status_of(resp) in (413, None)
    assert site.request("/api/now")[0] == 200


@pytest.mark.parametrize("value", [b"-1", b"abc", b"1e3", b"", b"99999999999999999999"])
def test_bad_content_length_400(site, value):
    resp = site.raw(
        b"POST /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + value + b"\r\n\r\n"
    )
    assert status_of(resp) == 400


def test_chunked_request_body_411(site):
    resp = site.raw(
        b"POST /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert status_of(resp) == 411


def test_slow_client_timed_out_while_loop_runs(site):
    before = site.loop.passes
    t0 = time.monotonic()
    resp = site.raw(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X: y\r\n" * 40, slow=0.05, auth=False
    )
    assert time.monotonic() - t0 < 20
    assert status_of(resp) in (408, None)
    assert site.loop.passes > before + 100  # the loop ran on: no pass waits for a client
    assert site.loop.wait_passes()
    assert site.request("/api/now")[0] == 200


def test_silent_client_dropped(site):
    s = socket.create_connection(("127.0.0.1", site.port))
    time.sleep(1.5)
    assert site.loop.wait_passes()
    s.close()
    assert site.request("/api/now")[0] == 200


@pytest.mark.parametrize(
    "junk",
    [
        b"\r\n\r\n",
        b"\x00\xff\xfe\x80garbage\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nno-colon-header\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / FTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /?a=%ff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
)
def test_malformed_requests_400(site, junk):
    resp = site.raw(junk, auth=False)
    assert status_of(resp) == 400
    assert site.loop.wait_passes()
    assert site.request("/api/now")[0] == 200


@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("GET", "/reboot", "POST"),
        ("POST", "/api/now", "GET"),
        ("DELETE", "/logs/notes.txt", "GET"),
        ("PUT", "/settings", "GET, POST"),
        ("BREW", "/", "GET"),
        ("GET", "/delete", "POST"),
    ],
)
def test_wrong_methods_405(site, method, path, allow):
    status, _, hdrs = site.request(path, method, b"" if method != "GET" else None)
    assert status == 405 and hdrs["Allow"] == allow
    assert (site.logs / "notes.txt").exists() and site.actions.restarts == 0


def test_handler_fault_is_500_and_counted(site, monkeypatch):
    from smartmeter.web import api as web_api

    def boom(*_a):
        raise RuntimeError("boom")

    monkeypatch.setattr(web_api, "now_json", boom)
    assert site.request("/api/now")[0] == 500
    # the server thread counts after the response went out: give it a moment
    deadline = time.monotonic() + 2
    while site.state.counters.http_errors < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert site.web.errors >= 1 and site.state.counters.http_errors >= 1
    assert site.request("/api/status")[0] == 200


# -- state-changing actions ----------------------------------------------------------------
def test_cross_site_posts_refused(site):
    origin = "http://127.0.0.1:%d" % site.port
    for hdrs in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/x"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": origin + ".evil.example"},
    ):
        assert site.request("/delete", "POST", b"name=notes.txt", headers=hdrs)[0] == 403
        assert site.request("/reboot", "POST", b"", headers=hdrs)[0] == 403
    assert (site.logs / "notes.txt").exists() and site.actions.restarts == 0
    status, body, _ = site.request("/delete", "POST", b"name=notes.txt", headers={"Origin": origin})
    assert status == 200 and not (site.logs / "notes.txt").exists()


def test_delete_reboot_setup(site):
    assert site.request("/delete", "POST", b"name=2024-01-02.csv")[0] == 200
    assert not (site.logs / "2024-01-02.csv").exists()
    assert site.request("/delete", "POST", b"name=..%2Fsettings.toml")[0] == 404
    assert site.request("/delete", "POST", b"name=adir")[0] == 404
    site.storage.writing = "2024-02-01.csv"  # the log appends to it
    assert site.request("/delete", "POST", b"name=2024-02-01.csv")[0] == 409
    assert site.request("/reboot", "POST", b"")[0] == 200 and site.actions.restarts == 1
    assert site.request("/setup", "POST", b"")[0] == 200 and site.actions.setups == 1


def test_upload_streams_sanitises_and_checks_space(site):
    data = os.urandom(300_000)
    status, body, _ = site.request(
        "/upload?name=..%2F..%2Fmy%20data%3B.csv",
        "POST",
        data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 201, body
    assert json.loads(body) == {"name": "my_data_.csv", "size": 300000}
    assert (site.logs / "my_data_.csv").read_bytes() == data
    assert not (site.root / "my data;.csv").exists()
    # existing name, bad names, no length
    assert site.request("/upload?name=my_data_.csv", "POST", b"x")[0] == 409
    assert site.request("/upload?name=...", "POST", b"x")[0] == 400
    resp = site.raw(b"POST /upload?name=a.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(resp) == 411
    # more than the card holds: refused before a byte is stored
    free = site.storage.refresh_space()
    resp = site.raw(
        b"POST /upload?name=big.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
        % (free + 1)
    )
    assert status_of(resp) == 507 and not (site.logs / "big.csv").exists()


def test_aborted_upload_leaves_no_file(site):
    s = socket.create_connection(("127.0.0.1", site.port))
    token = base64.b64encode(("admin:" + PASSWORD).encode())
    s.sendall(
        b"POST /upload?name=half.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic "
        + token
        + b"\r\nContent-Length: 100000\r\n\r\n"
        + b"x" * 5000
    )
    time.sleep(0.3)
    s.close()
    end = time.monotonic() + 5
    while (site.logs / "half.csv").exists() and time.monotonic() < end:
        time.sleep(0.05)
    assert not (site.logs / "half.csv").exists() and not site.web.jobs


def test_settings_write_override_without_echoing_secrets(site):
    form = (
        b"CIRCUITPY_WIFI_SSID=home&CIRCUITPY_WIFI_PASSWORD=wifi-pass-123&METER_KEY="
        b"&GRAPHITE_HOST=graphite.lan&GRAPHITE_PORT=2004&UI_LANGUAGE=en&MQTT_PASSWORD="
    )
    status, body, _ = site.request("/settings", "POST", form)
    assert status == 200 and json.loads(body)["saved"] is True
    saved = overrides.load(site.fs)
    values = saved.values
    assert not saved.problems and saved.path == config_mod.OVERRIDE_SLOTS[0]
    assert values == {
        "CIRCUITPY_WIFI_SSID": "home",
        "CIRCUITPY_WIFI_PASSWORD": "wifi-pass-123",
        "GRAPHITE_HOST": "graphite.lan",
        "GRAPHITE_PORT": 2004,
        "UI_LANGUAGE": "en",
    }
    assert b"wifi-pass-123" not in body
    # an invalid value is refused, named, not echoed; the file is unchanged
    status, body, _ = site.request("/settings", "POST", b"METER_KEY=secretbutbad&GRAPHITE_PORT=0")
    assert status == 400 and b"secretbutbad" not in body
    assert b"METER_KEY" in body and b"GRAPHITE_PORT" in body
    assert overrides.load(site.fs).values == values
    settings = site.request("/api/settings")[1]
    assert b"wifi-pass" not in settings


def test_secrets_never_in_any_response(site):
    site.state.ap_password = "ap-pass-xyz"
    for path in PATHS + ["/api/settings", "/api/status"]:
        site.request(path)
    site.request("/settings", "POST", b"MQTT_PASSWORD=new-mqtt-pw-99")
    joined = b"".join(site.bodies)
    for secret in (
        PASSWORD,
        "mqtt-secret-77",
        "36C66639E48A8CA4D6BC8B282A793BBB",
        "ap-pass-xyz",
        "new-mqtt-pw-99",
    ):
        assert secret.encode() not in joined and secret.lower().encode() not in joined


def test_generated_password_stored_and_reused(tmp_path):
    site = Site(tmp_path, {"WEB_PASSWORD": ""})
    try:
        generated = site.state.web_password_generated
        assert generated and len(generated) >= 10
        assert (site.root / "sd" / ".smartmeter" / "webpass.txt").read_text() == generated
        assert site.request("/", password="smartmeter")[0] == 401
        assert site.request("/", password="")[0] == 401
        assert site.request("/", password=generated)[0] == 200
        body = b"".join(site.request(p, password=generated)[1] for p in PATHS)
        assert generated.encode() not in body
        again = WebServer(site.config, State(), socket, site.storage, Actions(), WALL)
        assert again.state.web_password_generated == generated
    finally:
        site.close()


# -- streaming ---------------------------------------------------------------------------
def test_big_download_is_sliced(site):
    data = os.urandom(8 * 1024 * 1024)
    (site.logs / "2024-03-01.csv").write_bytes(data)
    passes = site.loop.passes
    status, body, _ = site.request("/logs/2024-03-01.csv")
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert site.loop.passes - passes > 8 * 1024 * 1024 // 65536  # returned to the loop per slice
    assert site.web.max_slice_ms < 500
    assert site.services > 100


def test_two_transfers_max_then_503(site):
    (site.logs / "2024-03-02.csv").write_bytes(b"x" * 4_000_000)
    socks = []
    token = base64.b64encode(("admin:" + PASSWORD).encode())
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", site.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(
            b"GET /logs/2024-03-02.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic "
            + token
            + b"\r\n\r\n"
        )
        socks.append(s)
    end = time.monotonic() + 5
    while len(site.web.jobs) < 2 and time.monotonic() < end:
        time.sleep(0.01)
    assert site.request("/logs/2024-01-01.csv")[0] == 503
    assert site.request("/api/now")[0] == 200  # small answers still work
    for s in socks:
        s.close()


# -- setup mode ------------------------------------------------------------------------------
class FakeRadio:
    def __init__(self, connected=False):
        self.connected = connected
        self.ap = None
        self.calls = []
        self.mdns = None

    def start_ap(self, ssid, password):
        self.calls.append(("start", ssid, password))
        self.ap = (ssid, password)

    def stop_ap(self):
        self.calls.append(("stop",))
        self.ap = None

    def start_mdns(self, hostname):
        self.mdns = hostname


def test_setup_ap_when_no_wifi_configured():
    cfg = config_mod.load(lambda _n: None, {})
    st = State()
    radio = FakeRadio()
    ns = NetSetup(cfg, st, radio, now_ms=0)
    ns.poll(10)
    assert radio.ap[0] == "smartmeter-setup" and len(radio.ap[1]) >= 8
    assert st.ap_mode and st.ap_ssid == "smartmeter-setup" and st.ap_password == radio.ap[1]
    ns.poll(20)
    assert len(radio.calls) == 1


def test_setup_ap_after_grace_and_closed_on_connect():
    cfg = config_mod.load(
        lambda _n: None,
        {"CIRCUITPY_WIFI_SSID": "home", "HOSTNAME": "meter1", "AP_PASSWORD": "ap-password-1"},
    )
    st = State()
    radio = FakeRadio(connected=False)
    ns = NetSetup(cfg, st, radio, now_ms=0, grace_ms=180_000)
    ns.poll(179_000)
    assert radio.ap is None and not st.ap_mode
    ns.poll(180_000)
    assert radio.ap == ("meter1-setup", "ap-password-1") and st.ap_mode
    radio.connected = True
    ns.poll(181_000)
    assert radio.ap is None and not st.ap_mode and st.ap_password is None
    assert radio.mdns == "meter1"
    # on request (menu / web button) even while connected, until the portal time ends
    ns.request(200_000)
    ns.poll(200_001)
    assert st.ap_mode
    ns.poll(200_000 + ns.portal_ms + 1)
    assert not st.ap_mode


def test_setup_start_failure_is_retried_not_raised():
    class Broken(FakeRadio):
        def start_ap(self, ssid, password):
            raise RuntimeError("no AP")

    cfg = config_mod.load(lambda _n: None, {})
    st = State()
    ns = NetSetup(cfg, st, Broken(), now_ms=0)
    ns.poll(1)
    assert not st.ap_mode and "no AP" in st.last_errors["setup"]


# -- the 60 MB month while the meter pushes (the real app loop, sim/run.py) ------------------
def test_month_download_while_meter_pushes(tmp_path):
    from sim.hardware import SimClock
    from sim.run import Simulation

    values = {
        "METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB",
        "METER_AUTH_KEY": "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF",
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "WEB_PORT": free_port(),
        "WEB_PASSWORD": PASSWORD,
        "CIRCUITPY_WIFI_SSID": "sim",
        "HOSTNAME": "smartmeter-sim",
    }
    logs = tmp_path / "sd" / "logs"
    logs.mkdir(parents=True)
    row = b"01.05.2023 00:00:00;+02:00;12345678;1234\r\n"  # valid rows: the log keeps them
    expect = hashlib.sha256()
    total = 0
    for day in range(1, 32):
        body = row * (2_000_000 // len(row))
        data = HEADER + body
        (logs / ("2023-05-%02d.csv" % day)).write_bytes(data)
        expect.update(data if day == 1 else body)
        total += len(data) if day == 1 else len(body)
    assert total > 60_000_000
    sim = Simulation(
        values, data_dir=str(tmp_path), clock=SimClock(speed=1000), display="none", quiet=True
    )
    result = {}

    def client():
        req = urllib.request.Request("http://127.0.0.1:%d/month/2023-05.csv" % values["WEB_PORT"])
        token = base64.b64encode(("admin:" + PASSWORD).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
        h = hashlib.sha256()
        n = 0
        with urllib.request.urlopen(req, timeout=30) as r:
            result["length"] = int(r.headers["Content-Length"])
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
        result["n"] = n
        result["sha"] = h.digest()

    try:
        for _ in range(20):
            sim.step()
        thread = threading.Thread(target=client, daemon=True)
        t0 = time.monotonic()
        thread.start()
        sent_before = sim.sent
        while thread.is_alive() and time.monotonic() - t0 < 60:
            sim.step()
        took = time.monotonic() - t0
        thread.join(1)
        for _ in range(50):  # let the last telegram on the wire be read and logged
            sim.app.loop_once()
    finally:
        sim.close()
    c = sim.app.state.counters
    assert result.get("n") == total == result["length"]
    assert result["sha"] == expect.digest()
    # at speed 1000 a push every 5 ms: a fast machine streams the 60 MB in ~0.1 s (20 pushes)
    assert sim.sent - sent_before >= 10, "the meter did not push during the download"
    assert c.decoded == sim.sent and c.csv_rows == sim.sent, sim.summary()
    assert c.uart_overflows == 0
    print(
        "60 MB month: %.1f s, %.1f MB/s, %d telegrams during it, longest web slice %d ms"
        % (took, total / took / 1e6, sim.sent - sent_before, sim.app.web.max_slice_ms)
    )


# -- the device dialect ------------------------------------------------------------------------
MPY_SCRIPT = r"""
import os
from smartmeter import config
from smartmeter.web import api as web_api, files as web_files
from smartmeter.state import State
from smartmeter.netsetup import NetSetup

assert web_files.unquote("/a%2e%2E%20b") == "/a.. b"
try:
    web_files.unquote("%zz")
    raise SystemExit("no error")
except ValueError:
    pass
assert web_files.parse_form(b"a=1+2&b=%26") == {"a": "1 2", "b": "&"}
assert not web_files.safe_name("..") and web_files.safe_name("2024-01-01.csv")
assert web_files.clean_upload_name("..\\..\\my data.csv") == "my_data.csv"

class F:
    def __init__(self, data):
        self.data = data
        self.pos = 0
    def read(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out
    def seek(self, p):
        self.pos = p
    def close(self):
        pass

class FS:
    files = {"/l/2024-01-02.csv": b"H\r\nb\r\n", "/l/2024-01-01.csv": b"H\r\na\r\n",
             "/l/x.txt": b"x"}
    def listdir(self, d):
        return [p.split("/")[-1] for p in self.files]
    def stat(self, p):
        return (0o100000, 0, 0, 0, 0, 0, len(self.files[p]))
    def open(self, p, mode):
        return F(self.files[p])

fs = FS()
names = web_files.list_names(fs, "/l")
assert names == ["2024-01-02.csv", "2024-01-01.csv", "x.txt"], names
parts = web_files.month_parts(fs, "/l", "2024-01")
out = b"".join(bytes(c) for c in web_files.file_chunks(fs, parts, bytearray(3)))
assert out == b"H\r\na\r\nb\r\n", out
text = "".join(web_files.listing_chunks(fs, "/l", names))
assert text.startswith('{"files":[{"name":"2024-01-02.csv","size":6}'), text
st = State()
for i in range(5):
    st.history.add(600 + 60 * i, i)
st.latest_epoch = 840
assert "".join(web_api.history_chunks(st, 2)) == '{"minutes":2,"points":[[780,3],[840,4]]}'
assert '"sd"' in web_api.status_json(st)
form = {"GRAPHITE_PORT": "2004", "MQTT_PASSWORD": ""}
merged, changed, problems = web_api.apply_settings(form, {})
assert merged == {"GRAPHITE_PORT": 2004} and not problems, (merged, problems)

class Radio:
    connected = False
    def start_ap(self, ssid, password):
        self.ap = (ssid, password)
    def stop_ap(self):
        self.ap = None

cfg = config.load(lambda n: None, {})
ns = NetSetup(cfg, st, Radio(), now_ms=0)
ns.poll(1)
assert st.ap_mode and len(st.ap_password) >= 8
print("ok")
"""


def test_pure_web_modules_run_on_micropython(require):
    from mpy import run_micropython

    try:
        rc, out, err = run_micropython(MPY_SCRIPT, files=["smartmeter"])
    except Exception as exc:  # noqa: BLE001 - runner missing (no node): skip locally, fail in CI
        require(False, "MicroPython VM unavailable: %s" % exc)
        return
    assert rc == 0, err
    assert out.splitlines()[-1] == "ok"


# -- usage ----------------------------------------------------------------------------------
def _usage_state(state):
    from smartmeter.datalog.usage import Tariff, Usage

    u = Usage(Tariff(price_mct=25_000, feed_in_mct=8_000, base_fee_mct=450_000))
    t0 = 1709247600  # 2024-03-01 00:00 CET
    a, e = 1_000_000, 0
    for t in range(t0, t0 + 3 * 86400, 60):
        if t0 + 86400 + 3600 <= t < t0 + 86400 + 4 * 3600:
            continue  # 3 h without telegrams on the 2nd
        a += 10  # 600 Wh per hour
        e += 1 if (t // 3600) % 24 in (10, 11, 12) else 0
        u.add(t, a, e)
    state.usage = u
    state.latest_epoch = u.last_epoch
    return u


def test_usage_api_hours_days_months_and_csv(site):
    u = _usage_state(site.state)
    hours = json.loads(site.request("/api/usage?resolution=hour")[1])
    assert hours["resolution"] == "hour" and len(hours["rows"]) == 24
    last = hours["rows"][-1]
    assert last["label"] == "23:00" and last["import_wh"] == 600 and last["export_wh"] == 0
    assert last["cost_ct"] == 15.0  # 0.6 kWh * 25 ct
    assert hours["tariff"]["price_now_ct_kwh"] == 25.0 and hours["tariff"]["market_hours"] == 0
    days = json.loads(site.request("/api/usage?resolution=day")[1])["rows"]
    assert len(days) == 31 and days[-1]["label"] == "2024-03-03"
    assert [d["import_wh"] for d in days[-3:]] == [
        u.period(u.days, u.day_key(1709247600 + k * 86400))[0] for k in range(3)
    ]
    assert days[-2]["gap"] is True and days[-1]["gap"] is False  # the 3 h without telegrams
    assert days[-3]["import_wh"] == 24 * 600 - 10  # the first telegram starts the count
    assert days[0]["import_wh"] is None and days[0]["gap"] is True  # before the data: a gap
    credit = days[-1]["credit_ct"]
    assert credit == 180 * 8 / 1000 * 100 / 100  # 180 Wh fed in at 8 ct: 1.44 ct
    months = json.loads(site.request("/api/usage?resolution=month")[1])["rows"]
    assert len(months) == 12 and months[-1]["label"] == "2024-03"
    assert months[-1]["fee_ct"] == 450.0 and months[-2]["import_wh"] is None
    status, body, hdrs = site.request("/api/usage.csv?resolution=day")
    assert status == 200 and hdrs["Content-Type"].startswith("text/csv")
    lines = body.decode().split("\r\n")
    assert lines[0].startswith("day;start UTC;import kWh;export kWh;cost EUR")
    assert lines[-2] == "2024-03-03;1709420400;14,400;0,180;3,600;0,014;;"  # excel-de: EUR
    assert lines[1].endswith("no data")
    assert site.request("/api/usage?resolution=year")[0] == 400
    assert site.request("/usage")[1].startswith(b"<!DOCTYPE html>")


def test_usage_api_quarters_and_operator_csv(site):
    """Quarter rows of yesterday and today: energy, the quarter's own import and feed-in price,
    cost = energy x price; later quarters of today carry their known price only; the CSV has the
    operators' quarter-hour columns (Datum;Zeit von;Zeit bis;Verbrauch [kWh])."""
    from smartmeter.datalog.market import MarketTariff as Tariff
    from smartmeter.datalog.usage import Usage, cost_mct

    tariff = Tariff(price_mct=25_000, feed_in_mct=8_000, feed_in_dynamic=True, feed_in_fee_mct=500)
    t0 = 1709247600  # 2024-03-01 00:00 CET
    day3 = t0 + 2 * 86400
    tariff.set_market([(q, 50_000 + (q % 96) * 1000) for q in range(day3 // 900, day3 // 900 + 96)])
    u = Usage(tariff)
    a, e = 1_000_000, 0
    for t in range(t0, day3 + 12 * 3600 + 7 * 60 + 1, 60):
        a += 10  # 150 Wh per quarter
        e += 1 if (t // 3600) % 24 in (10, 11, 12) else 0
        u.add(t, a, e)
    site.state.usage = u
    site.state.latest_epoch = u.last_epoch
    body = json.loads(site.request("/api/usage?resolution=quarter")[1])
    rows = body["rows"]
    assert body["resolution"] == "quarter" and len(rows) == 192  # 2 x 96
    assert rows[0]["date"] == "02.03.2024" and rows[0]["label"] == "00:00"
    assert rows[0]["to"] == "00:15" and rows[-1]["label"] == "23:45"
    now_i = 96 + 48  # 03.03. 12:00 (11:00 UTC), the open quarter
    assert rows[now_i]["date"] == "03.03.2024" and rows[now_i]["label"] == "12:00"
    for i, r in enumerate(rows[96:], 96):
        q = r["start"] // 900
        price = 50_000 + (q % 96) * 1000  # milli-EUR/MWh; / 10 = mct/kWh (no markup, no VAT)
        assert r["price_ct_kwh"] == price / 10_000
        assert r["feed_in_ct_kwh"] == (price / 10 - 500) / 1000
        if i > now_i:
            assert r["future"] is True and r["import_wh"] is None
            continue
        assert r["dynamic"] is True and r["feed_in_dynamic"] is True
        assert r["cost_ct"] == cost_mct(r["import_wh"], price // 10) / 1000
        assert r["credit_ct"] == cost_mct(r["export_wh"], price // 10 - 500) / 1000
        assert r["import_wh"] == (150 if i < now_i else 80)
    # yesterday: the fixed tariff (no market prices then)
    assert rows[40]["price_ct_kwh"] == 25.0 and rows[40]["cost_ct"] == 3.75
    assert rows[40]["feed_in_ct_kwh"] == 8.0 and rows[40]["feed_in_dynamic"] is False
    assert body["tariff"]["price_now_ct_kwh"] == (50_000 + 44 * 1000) / 10 / 1000
    assert body["tariff"]["price_next_ct_kwh"] == (50_000 + 45 * 1000) / 10 / 1000
    # feed-in at the market: now and next quarter, as for import (not the fixed 8 ct)
    assert body["tariff"]["feed_in_now_ct_kwh"] == ((50_000 + 44 * 1000) / 10 - 500) / 1000
    assert body["tariff"]["feed_in_next_ct_kwh"] == ((50_000 + 45 * 1000) / 10 - 500) / 1000
    assert body["tariff"]["market_quarters"] == 96
    status, body, hdrs = site.request("/api/usage.csv?resolution=quarter")
    assert status == 200 and hdrs["Content-Type"].startswith("text/csv")
    lines = body.decode().split("\r\n")
    assert lines[0].startswith("Datum;Zeit von;Zeit bis;Verbrauch [kWh];Einspeisung [kWh];Preis")
    assert len(lines) == 1 + 96 + 49 + 1  # up to the open quarter, then the final line break
    assert lines[97] == "03.03.2024;00:00;00:15;0,150;0,000;14,200;0,021;13,700;0,000;%d;" % (
        day3  # local midnight, in UTC
    )


def test_usage_api_without_summary(site):
    site.state.usage = None
    body = json.loads(site.request("/api/usage?resolution=day")[1])
    assert body["rows"] == [] and body["now"] is None


def test_price_settings_from_the_settings_page(site):
    """Prices are typed as shown on the bill ("24,95") and shown back the same way."""
    status, body, _ = site.request(
        "/settings", "POST", b"PRICE_CT_KWH=24%2C95&FEED_IN_CT_KWH=7.5&BASE_FEE_EUR_MONTH="
    )
    assert status == 200 and json.loads(body)["saved"] is True
    values = overrides.load(site.fs).values
    assert values["PRICE_CT_KWH"] == "24,95" and values["FEED_IN_CT_KWH"] == "7.5"
    assert "BASE_FEE_EUR_MONTH" not in values  # empty keeps the current value
    cfg = config_mod.load(lambda _n: None, values)
    assert (cfg.PRICE_CT_KWH, cfg.FEED_IN_CT_KWH) == (24_950, 7_500) and not cfg.problems
    site.config.PRICE_CT_KWH = cfg.PRICE_CT_KWH
    shown = json.loads(site.request("/api/settings")[1])["values"]
    assert shown["PRICE_CT_KWH"] == "24.95" and shown["BASE_FEE_EUR_MONTH"] == "0"
    status, body, _ = site.request("/settings", "POST", b"PRICE_CT_KWH=24.9501")
    assert status == 400 and b"PRICE_CT_KWH" in body
