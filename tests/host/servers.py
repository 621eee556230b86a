# SPDX-License-Identifier: MIT
"""Real servers for host tests, started on free loopback ports with their own storage.

- :func:`carbon_server`: a real ``carbon-cache`` (Graphite's receiver, Twisted) writing whisper
  files with a 1-second retention into ``tmp_path``; :class:`CarbonServer` reads them back.
- :func:`black_hole_server`: a TCP listener that accepts (or not) and never reads.

Usage as a context manager (or through the fixtures the test modules define)::

    with carbon_server(tmp_path) as carbon:
        host, port, whisper_dir = carbon
        ...
        carbon.wait_points({"smartmeter.strom.L1": {epoch: 1.23}}, timeout=10)

Add further servers (mosquitto, ...) here as their own ``*_server`` context manager, using
:func:`free_port` and :func:`wait_port`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOOPBACK = "127.0.0.1"


# -- helpers ---------------------------------------------------------------------------------
def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``host:port`` accepts a TCP connection; raise with a reason otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("%s:%d did not accept within %.0f s" % (host, port, timeout))


def open_fds() -> int:
    """Number of open file descriptors of this process (Linux), once garbage is collected (so
    a socket another test dropped cannot close in the middle of a count)."""
    import gc

    gc.collect()
    return len(os.listdir("/proc/self/fd"))


class ServerProcess:
    """One server process at a time on a fixed port: ``start()`` waits until it listens,
    ``stop()`` (SIGTERM, then SIGKILL) keeps port and files, so start/stop is an outage.

    A subclass sets ``host``, ``port``, ``log_path`` and ``name`` and implements ``command()``.
    """

    name = "server"
    host = LOOPBACK
    port = 0
    log_path: Path
    proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        if self.running:
            return
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_port(self.host, self.port, timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError("%s did not start:\n%s" % (self.name, self.log())) from None

    def stop(self, timeout: float = 20.0) -> None:
        import signal

        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self.proc = None
        self._log.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


# -- carbon-cache ----------------------------------------------------------------------------
_CARBON_CONF = """\
[cache]
STORAGE_DIR = {root}/storage
LOCAL_DATA_DIR = {whisper}
WHITELISTS_DIR = {root}/storage/lists
LOG_DIR = {root}/log
PID_DIR = {root}
USER =
LINE_RECEIVER_INTERFACE = {host}
LINE_RECEIVER_PORT = {line_port}
PICKLE_RECEIVER_INTERFACE = {host}
PICKLE_RECEIVER_PORT = {pickle_port}
CACHE_QUERY_INTERFACE = {host}
CACHE_QUERY_PORT = {query_port}
ENABLE_UDP_LISTENER = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_UPDATES_PER_SECOND_ON_SHUTDOWN = inf
MAX_CREATES_PER_MINUTE = inf
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = True
WHISPER_SPARSE_CREATE = True
ENABLE_TAGS = False
LOG_UPDATES = False
LOG_CACHE_HITS = False
LOG_CACHE_QUEUE_SORTS = False
LOG_LISTENER_CONN_SUCCESS = False
CARBON_METRIC_INTERVAL = 0
"""

# 1-second points for 6 hours: tests send timestamps from the last few hours.
_SCHEMAS = """\
[default]
pattern = .*
retentions = 1s:6h
"""

# "last": a re-sent point replaces the earlier one; xFilesFactor 0 keeps single points.
_AGGREGATION = """\
[default]
pattern = .*
xFilesFactor = 0
aggregationMethod = last
"""

# Runs carbon's own entry point (what bin/carbon-cache.py does) without needing the script path.
_LAUNCH = (
    "import sys; from carbon.util import run_twistd_plugin; run_twistd_plugin(sys.argv.pop(1))"
)


class CarbonServer:
    """A carbon-cache process with its own config and whisper directory under ``root``.

    Iterates as ``(host, port, whisper_dir)``. ``stop()`` then ``start()`` restarts it on the same
    port with the same data (for outage tests).
    """

    def __init__(self, root: Path, host: str = LOOPBACK):
        self.root = Path(root)
        self.host = host
        self.port = free_port(host)
        self.whisper_dir = self.root / "storage" / "whisper"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.root / "carbon.log"
        conf = self.root / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        self.whisper_dir.mkdir(parents=True, exist_ok=True)
        (conf / "carbon.conf").write_text(
            _CARBON_CONF.format(
                root=self.root,
                whisper=self.whisper_dir,
                host=host,
                line_port=self.port,
                pickle_port=free_port(host),
                query_port=free_port(host),
            )
        )
        (conf / "storage-schemas.conf").write_text(_SCHEMAS)
        (conf / "storage-aggregation.conf").write_text(_AGGREGATION)

    def __iter__(self):
        return iter((self.host, self.port, self.whisper_dir))

    def start(self, timeout: float = 20.0) -> None:
        """Start carbon-cache and wait until its line receiver accepts connections."""
        if self.proc is not None:
            return
        env = dict(os.environ, GRAPHITE_ROOT=str(self.root), PYTHONUNBUFFERED="1")
        args = [sys.executable, "-c", _LAUNCH, str(self.root / "bin" / "carbon-cache.py")]
        args += ["--config=%s" % (self.root / "conf" / "carbon.conf")]
        args += ["--pidfile=%s" % (self.root / "carbon-cache.pid"), "--nodaemon", "start"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the child's exit
        try:
            self.proc = subprocess.Popen(
                args, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        try:
            wait_port(self.host, self.port, timeout, self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError("carbon-cache did not start: %s\n%s" % (exc, self.log())) from exc

    def stop(self, graceful: bool = True) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s; SIGKILL at once unless
        ``graceful``). Safe to call twice.

        Like a crash, this may lose points still in carbon's cache: wait for them first.
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if graceful:
            proc.terminate()
        else:
            proc.kill()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def wsp(self, metric: str) -> Path:
        """The whisper file of a dotted metric path."""
        return self.whisper_dir.joinpath(*metric.split(".")).with_suffix(".wsp")

    def points(self, metric: str, t0: int, t1: int) -> dict[int, float]:
        """Stored points of ``metric`` with ``t0 <= timestamp <= t1`` as {epoch: value}."""
        import whisper

        path = self.wsp(metric)
        if not path.exists():
            return {}
        try:
            fetched = whisper.fetch(str(path), t0 - 1, t1)
        except (whisper.WhisperException, OSError, ValueError):
            return {}  # being created right now
        if fetched is None:
            return {}  # outside the archive's retention
        (start, _end, step), values = fetched
        out = {}
        for k, value in enumerate(values):
            ts = start + k * step
            if value is not None and t0 <= ts <= t1:
                out[ts] = value
        return out

    def metrics(self) -> list[str]:
        """Dotted names of every whisper file."""
        names = []
        for path in self.whisper_dir.rglob("*.wsp"):
            rel = path.relative_to(self.whisper_dir).with_suffix("")
            names.append(".".join(rel.parts))
        return sorted(names)

    def wait_points(self, expected: dict[str, dict[int, float]], timeout: float = 15.0) -> dict:
        """Poll the whisper files until every expected point is stored with its value.

        :returns: {metric: {epoch: (expected, stored or None)}} of what is still wrong (empty
            when all arrived before the deadline)
        """
        deadline = time.monotonic() + timeout
        while True:
            wrong: dict[str, dict[int, tuple]] = {}
            for metric, pts in expected.items():
                if not pts:
                    continue
                stored = self.points(metric, min(pts), max(pts))
                for ts, value in pts.items():
                    got = stored.get(ts)
                    if got is None or abs(got - value) > 1e-6 * max(1.0, abs(value)):
                        wrong.setdefault(metric, {})[ts] = (value, got)
            if not wrong or time.monotonic() > deadline:
                return wrong
            time.sleep(0.1)


@contextmanager
def carbon_server(tmp_path: Path) -> Iterator[CarbonServer]:
    """Start carbon-cache in ``tmp_path/carbon`` on a free loopback port; stop it afterwards."""
    server = CarbonServer(Path(tmp_path) / "carbon")
    server.start()
    try:
        yield server
    finally:
        server.stop(graceful=False)


# -- black hole ------------------------------------------------------------------------------
@contextmanager
def black_hole_server(accept: bool = True, backlog: int = 1, rcvbuf: int = 2048):
    """A listener that never reads. Yields (host, port, held_connections).

    ``accept=True`` accepts every connection and holds it open without reading, so the
    client's sends fill the TCP window and then block. ``accept=False`` never accepts: once the
    backlog is full, connects time out.
    """
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # inherited by accepted ones
    lsock.bind((LOOPBACK, 0))
    lsock.listen(backlog)
    held: list[socket.socket] = []
    stop = threading.Event()

    def acceptor():
        lsock.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=acceptor, daemon=True) if accept else None
    if thread:
        thread.start()
    try:
        yield LOOPBACK, lsock.getsockname()[1], held
    finally:
        stop.set()
        if thread:
            thread.join(2)
        for conn in held:
            conn.close()
        lsock.close()
