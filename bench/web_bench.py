"""Web download benchmark: our sliced server vs Python's http.server vs a blocking ChunkedResponse.

``run()`` serves one file of ``size_mb`` MB on loopback three ways, all measured in one run:

- ``ours``: ``smartmeter.web.server.WebServer`` polled by a loop thread (the super-loop
  stand-in); the longest ``poll()`` is the loop pause the download causes. Repeated for
  several chunk sizes.
- ``chunked``: the alternative design, adafruit_httpserver's ``ChunkedResponse`` whose generator
  calls ``service()`` between chunks; ``poll()`` returns only when the download is done, so the
  loop pause is the whole transfer.
- ``stdlib``: ``http.server.ThreadingHTTPServer`` + ``SimpleHTTPRequestHandler`` (reference).

Returns a dict of numbers (MB/s, ms); ``python -m bench.web_bench`` prints them.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import socket
import tempfile
import threading
import time
import urllib.request

PASSWORD = "bench-password"


def _port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _download(url, auth=True):
    req = urllib.request.Request(url)
    if auth:
        req.add_header(
            "Authorization", "Basic " + base64.b64encode(b"admin:" + PASSWORD.encode()).decode()
        )
    n = 0
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
    return n, time.perf_counter() - t0


class _Poller:
    def __init__(self, poll):
        self.poll = poll
        self.stop = False
        self.max_ms = 0.0
        self.passes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            t0 = time.perf_counter()
            self.poll()
            took = (time.perf_counter() - t0) * 1000
            self.max_ms = max(self.max_ms, took)
            self.passes += 1
            time.sleep(0.0002)  # the rest of the loop pass (UART, display, sinks)

    def close(self):
        self.stop = True
        self.thread.join(10)


def _ours(root, name, size, chunk):
    from sim.hardware import SimClock
    from smartmeter import config as config_mod
    from smartmeter.datalog.sd import RealFS, Storage
    from smartmeter.state import State
    from smartmeter.web import server as web_mod

    old = web_mod._CHUNK
    web_mod._CHUNK = chunk
    port = _port()
    cfg = config_mod.load(
        lambda _n: None, {"WEB_PORT": port, "LOG_DIR": "/sd/logs", "WEB_PASSWORD": PASSWORD}
    )
    storage = Storage(RealFS(root=root, fsync=False), None, "/sd/logs", SimClock())
    storage.begin()
    services = [0]

    def service():
        services[0] += 1

    class Actions:
        def restart(self):
            pass

        def setup_mode(self):
            pass

    web = web_mod.WebServer(cfg, State(), socket, storage, Actions(), SimClock(), service)
    web.start("127.0.0.1")
    poller = _Poller(lambda: web.poll(0))
    try:
        n, took = _download("http://127.0.0.1:%d/logs/%s" % (port, name))
    finally:
        poller.close()
        web.stop()
        web_mod._CHUNK = old
    assert n == size
    return {
        "mb_s": size / took / 1e6,
        "max_pause_ms": poller.max_ms,
        "passes": poller.passes,
        "services": services[0],
    }


def _chunked(path, size, chunk=4096):
    from adafruit_httpserver import ChunkedResponse, Server

    port = _port()
    server = Server(socket, None)
    services = [0]

    @server.route("/file")
    def _file(request):
        def body():
            with open(path, "rb") as f:
                while True:
                    data = f.read(chunk)
                    if not data:
                        return
                    yield data
                    services[0] += 1  # service() between chunks

        return ChunkedResponse(request, body, content_type="text/csv")

    server.start("127.0.0.1", port)
    poller = _Poller(server.poll)
    try:
        n, took = _download("http://127.0.0.1:%d/file" % port, auth=False)
    finally:
        poller.close()
        server.stop()
    assert n == size
    return {"mb_s": size / took / 1e6, "max_pause_ms": poller.max_ms}


def _stdlib(directory, name, size):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=directory)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        n, took = _download("http://127.0.0.1:%d/%s" % (port, name), auth=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert n == size
    return {"mb_s": size / took / 1e6}


def run(size_mb=32, chunks=(1024, 2048, 4096, 8192, 16384)):
    """Measure and return ``{"ours_mb_s", "ours_max_pause_ms", "stdlib_mb_s", ...}``."""
    with tempfile.TemporaryDirectory() as tmp:
        logs = os.path.join(tmp, "sd", "logs")
        os.makedirs(logs)
        name = "2024-01-01.csv"
        path = os.path.join(logs, name)
        size = size_mb * 1000 * 1000
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        out = {"size_mb": size / 1e6}
        for chunk in chunks:
            r = _ours(tmp, name, size, chunk)
            out["ours_mb_s_chunk_%d" % chunk] = round(r["mb_s"], 1)
            out["ours_max_pause_ms_chunk_%d" % chunk] = round(r["max_pause_ms"], 1)
        r = _ours(tmp, name, size, 4096)  # the shipped chunk size
        out["ours_mb_s"] = round(r["mb_s"], 1)
        out["ours_max_pause_ms"] = round(r["max_pause_ms"], 1)
        out["ours_loop_passes"] = r["passes"]
        c = _chunked(path, size)
        out["chunked_mb_s"] = round(c["mb_s"], 1)
        out["chunked_max_pause_ms"] = round(c["max_pause_ms"], 1)
        out["stdlib_mb_s"] = round(_stdlib(logs, name, size)["mb_s"], 1)
    return out


if __name__ == "__main__":
    import json
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print(json.dumps(run(), indent=1))
