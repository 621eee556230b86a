"""A real InfluxDB 1.x server for host tests, on free loopback ports, with its own data folder.

Debian's ``influxdb`` package (``/usr/bin/influxd``). Missing: the test is skipped with the
reason - or fails under ``CI=true``, where CI installs it.

Usage (the server is stopped when the ``with`` block ends, whatever happens)::

    with influxdb_server(tmp_path) as influx:
        influx.url                        # http://127.0.0.1:<port>
        influx.query("SELECT * FROM m")   # rows of the first series, as dicts
        influx.stop()                     # an outage: the port refuses
        influx.start()                    # same port, same data
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from _support import require, which
from servers import LOOPBACK, ServerProcess, free_port

_CONF = """\
reporting-disabled = true
bind-address = "{host}:{rpc_port}"
[meta]
  dir = "{root}/meta"
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
[http]
  bind-address = "{host}:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""


def find_influxd() -> str:
    """Path of the server binary; skips (or fails under CI) the calling test when missing."""
    path = which("influxd")
    require(path is not None, "influxdb is not installed (apt-get install influxdb)")
    return path


class InfluxServer(ServerProcess):
    """One influxd process at a time on a fixed port; stop/start keep port and data."""

    name = "influxd"

    def __init__(self, directory: Path):
        self.binary = find_influxd()
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self.port = free_port()
        self.url = "http://%s:%d" % (self.host, self.port)
        self.log_path = self.dir / "influxd.log"
        self.conf_path = self.dir / "influxdb.conf"
        self.conf_path.write_text(
            _CONF.format(host=self.host, port=self.port, rpc_port=free_port(), root=self.dir)
        )

    def command(self) -> list[str]:
        return [self.binary, "-config", str(self.conf_path)]

    def _post(self, path: str, params: dict, body: bytes = b"") -> bytes:
        url = self.url + path + "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, data=body, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback test server
            return resp.read()

    def create_database(self, name: str) -> None:
        self._post("/query", {"q": 'CREATE DATABASE "%s"' % name})

    def query(self, db: str, q: str) -> list[dict]:
        """Rows of the first series of ``q`` as dicts (column -> value); [] when none."""
        url = self.url + "/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "s"})
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback server
            result = json.loads(resp.read())["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        series = result.get("series") or []
        if not series:
            return []
        cols = series[0]["columns"]
        return [dict(zip(cols, row, strict=True)) for row in series[0]["values"]]


@contextmanager
def influxdb_server(directory: Path):
    """A started :class:`InfluxServer`, stopped at the end of the block."""
    server = InfluxServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
