"""tools/deploy.py (USB drive) and tools/webdeploy.py (web workflow) against a fake drive and a
fake web workflow server that follows CircuitPython's documented /fs/ API."""

import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import deploy  # noqa: E402
import webdeploy  # noqa: E402

PASSWORD = "s3cret"


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "smartmeter" / "sub").mkdir(parents=True)
    (root / "drivers").mkdir()
    (root / "smartmeter" / "__init__.py").write_text("")
    (root / "smartmeter" / "app.py").write_text("APP = 1\n")
    (root / "smartmeter" / "sub" / "x.py").write_text("X = 1\n")
    (root / "smartmeter" / "notes.txt").write_text("not for the board\n")
    (root / "smartmeter" / "web" / "assets").mkdir(parents=True)
    (root / "smartmeter" / "web" / "assets" / "app.js").write_text("'use strict';\n")
    (root / "smartmeter" / "__pycache__").mkdir()
    (root / "smartmeter" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (root / "drivers" / "hte501.py").write_text("D = 1\n")
    (root / "code.py").write_text("import smartmeter.app\n")
    (root / "notice.py").write_text("N = 1\n")
    (root / "settings.toml.example").write_text('METER_KEY = ""\n')
    return root


def test_device_files_only_py_and_code_last(repo):
    files = deploy.device_files(repo)
    assert files == [
        "smartmeter/__init__.py",
        "smartmeter/app.py",
        "smartmeter/sub/x.py",
        "smartmeter/web/assets/app.js",  # the web assets ship with the modules
        "drivers/hte501.py",
        "notice.py",
        "code.py",
    ]
    assert deploy.device_dirs(files) == [
        "drivers",
        "smartmeter",
        "smartmeter/sub",
        "smartmeter/web",
        "smartmeter/web/assets",
    ]


def test_usb_deploy_copies_and_keeps_settings(repo, tmp_path):
    drive = tmp_path / "CIRCUITPY"
    drive.mkdir()
    (drive / "boot_out.txt").write_text("Adafruit CircuitPython 10.0.0")
    assert deploy.deploy(drive, root=repo) == 7
    assert (drive / "smartmeter" / "sub" / "x.py").read_text() == "X = 1\n"
    assert not (drive / "smartmeter" / "notes.txt").exists()
    assert not (drive / "smartmeter" / "__pycache__").exists()
    # no settings.toml on the drive: the example becomes it
    assert (drive / "settings.toml").read_text() == 'METER_KEY = ""\n'

    (drive / "settings.toml").write_text('METER_KEY = "mine"\n')
    (repo / "smartmeter" / "app.py").write_text("APP = 2\n")
    assert deploy.deploy(drive, root=repo) == 1  # only the changed file
    assert (drive / "smartmeter" / "app.py").read_text() == "APP = 2\n"
    assert (drive / "settings.toml").read_text() == 'METER_KEY = "mine"\n'


class FakeBoard:
    """In-memory CIRCUITPY behind the web workflow's file API."""

    def __init__(self, usb_mounted=False):
        self.files = {"boot_out.txt": (b"Adafruit CircuitPython 10.0.0", 0)}
        self.dirs = {""}
        self.usb_mounted = usb_mounted
        self.requests = []

    def listing(self, d):
        out = []
        prefix = d + "/" if d else ""
        for name in sorted(self.dirs):
            if name and name.rpartition("/")[0] == d:
                out.append({"name": name[len(prefix) :], "directory": True, "file_size": 0})
        for name, (data, mtime_ms) in sorted(self.files.items()):
            if name.rpartition("/")[0] == d:
                out.append(
                    {
                        "name": name[len(prefix) :],
                        "directory": False,
                        "file_size": len(data),
                        "modified_ns": mtime_ms * 1_000_000,
                    }
                )
        return out


def make_handler(board):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, code, body=b"", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self):
            expected = "Basic " + base64.b64encode((":" + PASSWORD).encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._reply(401)
                return False
            return True

        def _path(self):
            assert self.path.startswith("/fs/")
            return unquote(self.path[len("/fs/") :])

        def do_GET(self):
            board.requests.append(("GET", self.path))
            if self.path == "/cp/version.json":
                info = {"web_api_version": 1, "version": "10.0.0", "board_name": "Fake S3"}
                return self._reply(200, json.dumps(info).encode())
            if not self._authorized():
                return None
            path = self._path()
            if path.endswith("/") or path == "":
                d = path.strip("/")
                if d not in board.dirs:
                    return self._reply(404)
                return self._reply(200, json.dumps(board.listing(d)).encode())
            if path not in board.files:
                return self._reply(404)
            return self._reply(200, board.files[path][0])

        def do_OPTIONS(self):
            board.requests.append(("OPTIONS", self.path))
            methods = "GET, OPTIONS" if board.usb_mounted else "GET, OPTIONS, PUT, DELETE, MOVE"
            self._reply(204, headers=[("Access-Control-Allow-Methods", methods)])

        def do_PUT(self):
            board.requests.append(("PUT", self.path))
            length = int(self.headers.get("Content-Length", "0"))
            data = self.rfile.read(length)
            if not self._authorized():
                return None
            if board.usb_mounted:
                return self._reply(409)
            path = self._path()
            parent = path.rstrip("/").rpartition("/")[0]
            if parent not in board.dirs:
                return self._reply(404)
            if path.endswith("/"):
                d = path.strip("/")
                if d in board.dirs:
                    return self._reply(204)
                board.dirs.add(d)
                return self._reply(201)
            existed = path in board.files
            board.files[path] = (data, int(self.headers.get("X-Timestamp", "0")))
            return self._reply(204 if existed else 201)

    return Handler


@pytest.fixture
def server():
    boards = []

    def start(board):
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(board))
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        boards.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in boards:
        httpd.shutdown()
        httpd.server_close()


def test_webdeploy_uploads_then_skips_unchanged(repo, server):
    fake = FakeBoard()
    board = webdeploy.Board(server(fake), PASSWORD, timeout=5)
    assert webdeploy.deploy(board, root=repo) == (7, 0)
    assert fake.files["smartmeter/sub/x.py"][0] == b"X = 1\n"
    assert fake.files["smartmeter/web/assets/app.js"][0] == b"'use strict';\n"
    assert fake.files["settings.toml"][0] == b'METER_KEY = ""\n'
    puts = [p for m, p in fake.requests if m == "PUT" and not p.endswith("/")]
    assert puts[-2:] == ["/fs/code.py", "/fs/settings.toml"]  # code.py after the modules

    fake.files["settings.toml"] = (b'METER_KEY = "mine"\n', 0)
    os.utime(repo / "smartmeter" / "app.py", (1_900_000_000, 1_900_000_000))
    fake.requests.clear()
    assert webdeploy.deploy(board, root=repo) == (1, 6)
    assert [p for m, p in fake.requests if m == "PUT" and not p.endswith("/")] == [
        "/fs/smartmeter/app.py"
    ]
    assert fake.files["settings.toml"][0] == b'METER_KEY = "mine"\n'


def test_webdeploy_refuses_while_usb_holds_the_drive(repo, server):
    fake = FakeBoard(usb_mounted=True)
    board = webdeploy.Board(server(fake), PASSWORD, timeout=5)
    with pytest.raises(webdeploy.DeployError, match="USB"):
        webdeploy.deploy(board, root=repo)
    assert set(fake.files) == {"boot_out.txt"}


def test_webdeploy_main_reports_wrong_password(server, monkeypatch, capsys):
    url = server(FakeBoard())
    monkeypatch.setenv("CIRCUITPY_WEB_API_PASSWORD", "wrong")
    # --source: the password is checked whether or not a release zip was built (fresh clone)
    assert webdeploy.main([url, "--timeout", "5", "--source"]) == 1
    assert "HTTP 401" in capsys.readouterr().out
    monkeypatch.delenv("CIRCUITPY_WEB_API_PASSWORD")
    assert webdeploy.main([url]) == 2
