# SPDX-License-Identifier: MIT
"""The web interface: adafruit_httpserver inside the super-loop, hardened, never blocking.

Routes, the API and the security rules are documented in ``docs/web-api.md``. How the stock
server (4.8.x) is wrapped rather than copied:

- ``_receive_request`` is replaced by a bounded reader: the request head goes into one
  preallocated 4 KiB buffer (431 past it), everything must arrive within 1 s (408), the socket
  waits in 50 ms steps and ``service()`` (the app's UART pump) runs between them. Content-Length
  must be digits (400), bodies are capped at 4 KiB (413) except the upload, whose body is never
  read into RAM but streamed to the card. The path is percent-decoded once and refused (400)
  when it holds ``..``/``.`` segments, backslashes, NUL or is not origin-form.
- ``_find_handler`` always returns our dispatcher, so *every* request - pages, API, plain file
  paths, unknown paths - passes Basic auth first (no ``root_path`` at all, so the library's
  unauthenticated file serving is never reached).
- ``poll()`` never raises: any exception is counted and the loop runs on.

Streaming (the choice, measured with ``bench/web_bench.py``): long responses are *jobs* that
``WebServer.poll()`` advances a slice at a time over a non-blocking socket - send what fits,
keep the rest for the next pass. The alternative, a ``ChunkedResponse`` whose generator calls
``service()`` between chunks, keeps the UART drained but holds the whole loop (display, buttons,
watchdog, Graphite) for the full download - 5 minutes for a 60 MB month at the original's
speed - so it was rejected. A slice ends after ``_SLICE_BYTES`` or ``_SLICE_MS`` or when the
socket is full; ``service()`` runs between chunks inside a slice. Chunks are ``_CHUNK`` bytes.
Measured on loopback (32 MB, ``make bench``): chunk 1/2/4/8/16 KiB -> 118/147/162/164/161 MB/s
with the longest poll() 1-4 ms; the blocking ChunkedResponse reached 330 MB/s but paused the
loop for the whole transfer (95 ms here, minutes at WiFi speed). 4 KiB is where the curve
flattens, and it keeps one buffer per transfer small on the device.
"""

import errno

from adafruit_httpserver import Server

from .. import config as config_mod
from ..netsetup import random_password
from ..netutil import would_block
from ..state import WEB_OFF, add_texts
from ..timeutil import Backoff, ticks_add, ticks_diff
from . import intake as web_http
from . import routes as web_routes
from .intake import HEADER_MAX, Reply, reply_raw  # noqa: F401 - HEADER_MAX: callers read it here

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_CHUNK = const(4096)  # bytes per file read / send
_SLICE_BYTES = const(65536)  # at most this much per job per poll
_SLICE_MS = const(20)  # ... or this long
_IDLE_MS = const(30000)  # a job without progress this long is dropped
_MIN_RATE = const(1024)  # bytes/s a transfer must average after _GRACE_MS, else it is dropped
_GRACE_MS = const(5000)
# Requests arriving at once: one address holds at most _PER_CLIENT (a browser opens up to 6 at
# once); its next connection closes its own oldest. At _HARD_PENDING in all, the oldest of the
# address holding the most makes room if it is older than _GRACE_PENDING_MS, else the rest waits
# in the backlog for a pass. So a slowloris host only ever pushes out its own connections and
# other clients always find room. (On the board the socket pool - 8 - is the tighter bound.)
_HARD_PENDING = const(8)
_GRACE_PENDING_MS = const(150)
_PER_CLIENT = const(6)
_ACCEPT_PER_POLL = const(8)
_BACKLOG = const(64)  # listen queue: see start()
_LISTEN_RETRY_MS = const(2000)  # the port was taken: try again after 2 s, doubling ...
_LISTEN_RETRY_MAX_MS = const(60000)  # ... to once a minute
_ANSWERS_PER_POLL = const(4)  # requests answered per pass (each may run one transfer slice)
_FREE_TRIES = const(3)  # wrong passwords in a row before a client has to wait
_FAIL_MAX_MS = const(60000)
_FAIL_CLIENTS = const(16)  # clients remembered (bounded)
# Wrong passwords checked in all, whatever the number of addresses (a per-address limit alone
# let 40 addresses have 2 000 a second checked): one per _GUESS_MS, up to _GUESS_BURST at once
# (a token bucket kept as the time it is full again). Beyond it a password is not checked at
# all: 429 with Retry-After. _GUESS_RESERVE of the burst is only for the _KNOWN_CLIENTS
# addresses that gave the right password before, so the owner's devices get in during an attack
# and any other device within _GUESS_MS * (_GUESS_RESERVE + 1) after it ends.
_GUESS_MS = const(900)
_GUESS_BURST = const(8)
_GUESS_RESERVE = const(2)
_KNOWN_CLIENTS = const(4)
_REFUSED_SHOW_MS = const(60000)  # the status shows "logins refused" this long after the last
_AP_IP = "192.168.4.1"  # the setup access point's address (CircuitPython's default)
_MAX_JOBS = const(2)  # concurrent downloads/uploads (the ESP32 has 8 sockets in all)
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


class _HttpServer(Server):
    """adafruit_httpserver's Server with our own non-blocking intake and one dispatcher.

    ``poll()`` is replaced: it accepts what is waiting and advances every connection whose
    request is still arriving (``intake.Pending``), without ever waiting on a socket.
    """

    def __init__(self, pool, web):
        super().__init__(pool, None)
        self._web = web

    def _receive_request(self, sock, client_address):
        raise RuntimeError("requests are read by WebServer.intake")

    def _find_handler(self, method, path):
        return self._web.dispatch

    @staticmethod
    def _create_server_socket(socket_source, ssl_context, host, port):
        # the library's, but a socket whose bind or listen failed is closed (it leaked one per
        # failed start; the board has only a few) and the backlog is ours (see start())
        sock = socket_source.socket(socket_source.AF_INET, socket_source.SOCK_STREAM)
        try:
            sock.setsockopt(socket_source.SOL_SOCKET, socket_source.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def poll(self):
        try:
            self._web.intake(self)
        except Exception as exc:  # noqa: BLE001 - nothing a client sends may stop the loop
            self._web.failed(exc)
            return "error"
        return "ok"


class Stream(Reply):
    """A response whose body a job sends in slices (``length`` None: ends at close)."""

    def __init__(
        self,
        request,
        web,
        chunks,
        length=None,
        content_type="application/json",
        headers=None,
        buf=None,
    ):
        super().__init__(request, headers=headers, content_type=content_type)
        self._web = web
        self._chunks = chunks
        self._length = length
        self._buf = buf

    def _send(self):
        self._send_headers(self._length, self._content_type)
        self._web.start_job(_SendJob(self._request.connection, self._chunks, self._buf))


class _UploadStart(Reply):
    """Sends nothing now: a job receives the body and answers when it is stored."""

    def __init__(self, request, web, upload, name):
        super().__init__(request)
        self._web = web
        self._upload = upload
        self._name = name

    def _send(self):
        request = self._request
        expect = (request.headers.get("Expect") or "").lower() == "100-continue"
        job = _RecvJob(
            request.connection, self._upload, self._web.take_buffer(), self._name, expect
        )
        self._web.start_job(job)


class _SendJob:
    upload = False

    def __init__(self, conn, chunks, buf):
        self.conn = conn
        self.chunks = chunks
        self.buf = buf
        self.pending = None
        self.sent = 0
        self.last = None
        self.began = None
        conn.settimeout(0)

    @property
    def moved(self):
        return self.sent

    def step(self, web, now):
        """Send what fits within one slice; True when done."""
        budget = _SLICE_BYTES
        conn = self.conn
        while True:
            if self.pending is None:
                try:
                    chunk = next(self.chunks)
                except StopIteration:
                    return True
                if isinstance(chunk, str):
                    chunk = chunk.encode()
                if not len(chunk):
                    continue
                self.pending = memoryview(chunk)
            try:
                n = conn.send(self.pending)
            except OSError as exc:
                if would_block(exc):
                    return False
                raise
            if not n:
                return False
            self.sent += n
            self.last = now
            budget -= n
            self.pending = self.pending[n:] if n < len(self.pending) else None
            if self.pending is None:
                web.service_between()
            if budget <= 0 or ticks_diff(web.wall(), now) >= _SLICE_MS:
                return False

    def close(self, web, exc=None):
        try:
            self.chunks.close()
        except Exception:  # noqa: BLE001 - a generator that fails to close is gone anyway
            pass
        if self.buf is not None:
            web.give_buffer(self.buf)
            self.buf = None
        try:
            self.conn.close()
        except OSError:
            pass


class _RecvJob:
    """Streams an upload body to the card, then answers 201."""

    upload = True

    def __init__(self, conn, upload, buf, name, expect_continue):
        self.conn = conn
        self.upload = upload
        self.buf = buf
        self.name = name
        self.last = None
        self.began = None
        self.received = 0
        self.started = False
        conn.settimeout(0)
        if expect_continue:
            try:
                conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                pass

    def step(self, web, now):
        up = self.upload
        if not self.started:
            self.started = True
            if up.write(b""):
                return self._done()
        budget = _SLICE_BYTES
        mv = memoryview(self.buf)
        while budget > 0:
            want = min(len(self.buf), up.length - up.received)
            try:
                n = self.conn.recv_into(mv[:want], want)
            except OSError as exc:
                if would_block(exc):
                    return False
                raise
            if not n:
                raise OSError(104, "client closed during upload")
            self.last = now
            self.received += n
            budget -= n
            if up.write(mv[:n]):
                return self._done()
            web.service_between()
        return False

    @property
    def moved(self):
        return self.received

    def _done(self):
        up = self.upload
        up.finish()
        size = up.received
        self.upload = None
        reply_raw(self.conn, 201, '{"name":"%s","size":%d}' % (self.name, size), "application/json")
        return True

    def close(self, web, exc=None):
        if self.upload is not None:
            self.upload.abort()
            if exc is not None:
                full = isinstance(exc, OSError) and exc.errno == 28
                reply_raw(self.conn, 507 if full else 500, "upload failed")
        web.give_buffer(self.buf)
        try:
            self.conn.close()
        except OSError:
            pass


class WebServer:
    """The web interface as a loop sink.

    :param config: Config (WEB_PORT, WEB_USER, WEB_PASSWORD, LOG_DIR, UI_LANGUAGE)
    :param state: the app State
    :param pool: socket pool (``socketpool.SocketPool`` or CPython's ``socket`` module)
    :param storage: ``smartmeter.datalog.sd.Storage`` or None (no SD: no files, no settings file)
    :param actions: object with ``restart()`` and ``setup_mode()``
    :param clock: the app's clock (``ticks_ms()``: wrapping milliseconds)
    :param service: callable run between slices of long work (``App.service_uart``)
    """

    name = "web"

    def __init__(self, config, state, pool, storage, actions, clock, service=None):
        self.config = config
        self.state = state
        self.storage = storage
        self.actions = actions
        self.service = service
        self.ticks = clock.ticks_ms
        # Budgets and deadlines count wall-clock time: the board's ticks are; the simulator's
        # clock may run faster (``wall_ms`` is its real time), a client's network does not.
        self.wall = getattr(clock, "wall_ms", None) or clock.ticks_ms
        self.requests = 0
        self.errors = 0
        self.last_error = ""
        self.max_slice_ms = 0  # longest poll() so far (the loop pause this server causes)
        self.jobs = []
        self.max_jobs = _MAX_JOBS
        self._bufs = []
        self.pending = []  # connections whose request is still arriving (intake.Pending)
        self._heads = []  # free HEADER_MAX buffers for them (at most _HARD_PENDING ever made)
        self.accepted = 0
        self.evicted = 0  # pending connections closed to make room for a new one
        self.slow_dropped = 0  # transfers below _MIN_RATE
        self.refused_host = 0
        self.throttled = 0  # requests answered 429 (too many wrong passwords)
        self.guesses = 0  # wrong passwords checked
        self._fails = {}  # client address -> [wrong passwords in a row, ticks until allowed]
        self._full_at = None  # wall ticks when the guess bucket is full again (None: it is)
        self._known = []  # addresses that gave the right password, most recent first (bounded)
        self.listen = None
        self.listen_tries = 0  # attempts to listen on WEB_PORT (one, unless the port was taken)
        self._retry = None  # Backoff while listening failed (None: listening or stopped)
        self._answered = 0
        self.log_dir = config.LOG_DIR.rstrip("/") or "/"
        # The settings files and the generated password live in config.OVERRIDE_DIR, a dot-folder
        # no file route can name; the legacy places are refused by name (routes._file_path).
        self.password_path = config_mod.WEB_PASSWORD_PATH
        self.private = (
            config_mod.OVERRIDE_DIR,
            config_mod.LEGACY_OVERRIDE,
            config_mod.LEGACY_WEB_PASSWORD,
        )
        user = config.WEB_USER or "admin"
        self._expected = (user + ":" + self._password()).encode()
        self.server = _HttpServer(pool, self)
        self.server.headers = _SECURITY_HEADERS

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, host="0.0.0.0"):
        """Listen on ``config.WEB_PORT``. If that fails (the port is taken...), the status
        says so (``State.web_off``) and ``poll()`` tries again with a backoff."""
        self.listen = host
        self._retry = Backoff(_LISTEN_RETRY_MS, _LISTEN_RETRY_MAX_MS)
        self._listen()

    def _listen(self):
        self.listen_tries += 1
        server = self.server
        st = self.state
        try:
            server.start(self.listen, self.config.WEB_PORT)
        except (OSError, RuntimeError) as exc:
            server.stopped = True  # the library set it False before its socket failed
            self._retry.fail(self.ticks())
            code = exc.args[0] if exc.args else None
            port = self.config.WEB_PORT
            if code == errno.EADDRINUSE:
                hints = ("WEB_PORT %d in use" % port, "WEB_PORT %d belegt" % port)
            else:
                hints = ("Port %d: error %s" % (port, code), "Port %d: Fehler %s" % (port, code))
            add_texts(WEB_OFF, {"en": (None, hints[0]), "de": (None, hints[1])})
            self.last_error = "cannot listen on port %d: %s" % (port, exc)
            st.last_errors["web"] = self.last_error[:80]
            st.web_off = True
            return
        self._retry = None
        st.web_off = False
        if st.last_errors.get("web", "").startswith("cannot listen"):
            st.last_errors["web"] = ""

    def stop(self):
        """Drop running transfers and close the listening socket."""
        for job in self.jobs:
            job.close(self)
        self.jobs = []
        for p in self.pending:
            _close(p.conn)
        self.pending = []
        self._retry = None
        if not self.server.stopped:
            self.server.stop()

    def poll(self, now_ms=None):
        """Accept and answer what has arrived, then advance each transfer by one slice."""
        t0 = self.wall()
        if not self.server.stopped:
            self.server.poll()
        elif self._retry is not None and self._retry.due(self.ticks()):
            self._listen()
        for job in list(self.jobs):
            self._step_job(job)
        took = ticks_diff(self.wall(), t0)
        if took > self.max_slice_ms:
            self.max_slice_ms = took
        st = self.state
        c = st.counters
        c.http_requests = self.requests
        c.http_errors = self.errors
        c.login_failures = self.guesses
        c.logins_refused = self.throttled
        since = st.login_refused_ticks
        if since is not None and ticks_diff(self.ticks(), since) > _REFUSED_SHOW_MS:
            st.login_refused_ticks = None  # (cleared here, so a wrapped tick count never shows)

    def _step_job(self, job):
        now = self.wall()
        if job.last is None:
            job.last = now
        if job.began is None:
            job.began = now
        try:
            done = job.step(self, now)
        except Exception as exc:  # noqa: BLE001 - a client that vanished ends its job only
            self.failed(exc)
            self.jobs.remove(job)
            job.close(self, exc)
            return
        if done:
            self.jobs.remove(job)
            job.close(self)
        elif ticks_diff(now, job.last) > _IDLE_MS:
            self.failed(OSError(110, "transfer idle"))
            self.jobs.remove(job)
            job.close(self, None)
        elif _too_slow(job, ticks_diff(now, job.began)):
            self.slow_dropped += 1
            self.failed(OSError(110, "transfer too slow"))
            self.jobs.remove(job)
            job.close(self, None)

    def start_job(self, job):
        self.jobs.append(job)

    def busy(self, spare=0):
        """True when no further transfer may start now (``spare``: extra slots allowed)."""
        return len(self.jobs) >= self.max_jobs + spare

    def uploading(self):
        """True while an upload runs: one at a time, so a download slot is always left."""
        for job in self.jobs:
            if job.upload:
                return True
        return False

    # -- intake: many connections, none waited on ------------------------------------------
    def intake(self, server):
        """Accept what is waiting, then advance every arriving request (no socket waits)."""
        now = self.wall()
        self._answered = 0
        lsock = server._sock
        for _ in range(_ACCEPT_PER_POLL):
            if len(self.pending) >= _HARD_PENDING and not self._evict(now, self.pending):
                break  # every one just arrived: the rest waits in the backlog for a pass
            try:
                conn, addr = lsock.accept()
            except OSError:
                break  # nothing waiting (EAGAIN), or no socket left: the rest waits
            try:
                conn.settimeout(0)
            except OSError:
                _close(conn)
                continue
            self.accepted += 1
            ip = addr[0] if addr else None
            mine = [p for p in self.pending if p.addr and p.addr[0] == ip]
            if len(mine) >= _PER_CLIENT:
                self._evict(now, mine, 0)  # a client that holds its share pushes out its own
            p = web_http.Pending(conn, addr, self._take_head(), now)
            self.pending.append(p)
            self._advance(server, p, now)  # a complete request is answered at once
        for p in list(self.pending):
            self._advance(server, p, now)
            if self._answered >= _ANSWERS_PER_POLL:
                break  # the rest next pass (each answer may start a transfer slice)

    def _advance(self, server, p, now):
        if p not in self.pending:
            return
        try:
            result = web_http.step(self, server, p, now)
        except Exception as exc:  # noqa: BLE001 - a request we cannot read is dropped, not retried
            self.failed(exc)
            result = True
        if result is False:
            return
        self.pending.remove(p)
        self._heads.append(p.buf)
        if result is True:
            _close(p.conn)
            return
        self._answered += 1
        self._answer(server, p.conn, result)

    def _evict(self, now, among, grace=_GRACE_PENDING_MS):
        """Make room: close one pending connection of ``among`` - of the address holding the
        most, the one that has had the longest time - but never one younger than ``grace`` (its
        request may be on the way). False if none qualifies."""
        counts = {}
        for p in self.pending:
            ip = p.addr[0] if p.addr else None
            counts[ip] = counts.get(ip, 0) + 1
        oldest = None
        best = None
        for p in among:
            age = ticks_diff(now, p.start)
            if age < grace:
                continue
            key = (counts.get(p.addr[0] if p.addr else None, 0), age)
            if best is None or key > best:
                best = key
                oldest = p
        if oldest is None:
            return False
        self.pending.remove(oldest)
        self._heads.append(oldest.buf)
        self.evicted += 1
        if oldest.n:
            web_http.reply_raw(oldest.conn, 408, "request timeout")
        _close(oldest.conn)
        return True

    def _take_head(self):
        return self._heads.pop() if self._heads else bytearray(HEADER_MAX)

    def _answer(self, server, conn, request):
        try:
            conn.settimeout(web_http._SEND_S)
            response = self.dispatch(request)
            if response is None:
                _close(conn)
                return
            server._set_default_server_headers(response)
            jobs = len(self.jobs)
            response._send()
            if len(self.jobs) > jobs:
                # One slice of the new transfer now: a small one (JSON, a page asset) is done
                # and its slot free before the next request of a page that asks for several.
                self._step_job(self.jobs[-1])
        except OSError as exc:  # the client went away while we answered
            self.failed(exc)
            _close(conn)

    # -- who may ask -----------------------------------------------------------------------
    def host_ok(self, request):
        """The Host header names this board (DNS rebinding: a page elsewhere cannot use it)."""
        host = request.headers.get("Host")
        if not host:
            return False
        host = host.strip().lower()
        if host.startswith("["):
            name = host[: host.find("]") + 1]
        else:
            name = host.split(":", 1)[0]
        name = name.rstrip(".")
        hostname = (self.config.HOSTNAME or "").lower()
        allowed = [hostname, hostname + ".local", "localhost", "127.0.0.1", "[::1]"]
        if self.state.ip:
            allowed.append(str(self.state.ip))
        if self.state.ap_mode:
            allowed.append(_AP_IP)
        if self.listen and self.listen not in ("0.0.0.0", ""):
            allowed.append(self.listen)
        return name in allowed

    def throttle_left(self, request, now):
        """Milliseconds this client must still wait after wrong passwords (0: may try)."""
        entry = self._fails.get(_client(request))
        if entry is None:
            return 0
        left = ticks_diff(entry[1], now)
        return left if left > 0 else 0

    def guess_wait(self, request, now):
        """Milliseconds until a password of this client may be checked at all (0: now): the
        pace of wrong passwords in all addresses together; addresses that logged in before
        may use the reserve."""
        debt = self._debt(now)
        spare = (
            _GUESS_BURST - 1
            if _client(request) in self._known
            else _GUESS_BURST - 1 - _GUESS_RESERVE
        )
        left = debt - spare * _GUESS_MS
        return left if left > 0 else 0

    def _debt(self, now):
        """Milliseconds until the guess bucket is full again (0..burst x pace)."""
        full = self._full_at
        if full is None:
            return 0
        debt = ticks_diff(full, now)
        if debt <= 0 or debt > _GUESS_BURST * _GUESS_MS:  # full (or a stale, wrapped time)
            self._full_at = None
            return 0
        return debt

    def refused(self):
        """A request answered 429 without checking its password: counted, shown on the status."""
        self.throttled += 1
        self.state.login_refused_ticks = self.ticks()

    def auth_failed(self, request, now):
        """Count a wrong password; from the 4th in a row the client waits 1 s, doubling to 60 s."""
        self.guesses += 1
        self._full_at = ticks_add(now, self._debt(now) + _GUESS_MS)
        ip = _client(request)
        entry = self._fails.get(ip)
        if entry is None:
            if len(self._fails) >= _FAIL_CLIENTS:  # bounded: forget the longest-allowed one
                old = None
                for key, value in self._fails.items():
                    if old is None or ticks_diff(value[1], self._fails[old][1]) < 0:
                        old = key
                self._fails.pop(old, None)
            entry = self._fails[ip] = [0, now]
        entry[0] += 1
        extra = entry[0] - _FREE_TRIES
        delay = 0 if extra <= 0 else min(_FAIL_MAX_MS, 1000 << min(extra - 1, 6))
        entry[1] = ticks_add(now, delay)

    def auth_ok(self, request):
        ip = _client(request)
        self._fails.pop(ip, None)
        known = self._known
        if known and known[0] == ip:
            return
        if ip in known:
            known.remove(ip)
        known.insert(0, ip)
        while len(known) > _KNOWN_CLIENTS:
            known.pop()

    def forget_guesses(self):
        """Forget wrong passwords (per address and in all): for tests of other things."""
        self._fails.clear()
        self._full_at = None

    def stream(
        self, request, chunks, length=None, content_type="application/json", headers=None, buf=None
    ):
        """A response whose body ``chunks`` (iterator of bytes/str) is sent in slices."""
        return Stream(request, self, chunks, length, content_type, headers, buf)

    def receive_upload(self, request, upload, name):
        """A response that streams the request body into ``upload`` and answers 201."""
        return _UploadStart(request, self, upload, name)

    def service_between(self):
        if self.service is not None:
            self.service()

    def take_buffer(self):
        return self._bufs.pop() if self._bufs else bytearray(_CHUNK)

    def give_buffer(self, buf):
        if buf is not None and len(self._bufs) < _MAX_JOBS:
            self._bufs.append(buf)

    def failed(self, exc):
        self.errors += 1
        self.last_error = (str(exc) or type(exc).__name__)[:80]
        self.state.last_errors["web"] = self.last_error

    # -- password --------------------------------------------------------------------------
    def _password(self):
        """WEB_PASSWORD, else the one stored on the card, else a new one (shown on the TFT)."""
        if self.config.WEB_PASSWORD:
            self.state.web_password_generated = None
            return self.config.WEB_PASSWORD
        fs = self.storage.fs if self.storage is not None else None
        password = None
        if fs is not None:
            password = _read_password(fs, self.password_path)
            if password is None:  # an older firmware kept it next to the logs: move it
                password = _read_password(fs, config_mod.LEGACY_WEB_PASSWORD)
                if password is not None and _write_password(fs, self.password_path, password):
                    try:
                        fs.remove(config_mod.LEGACY_WEB_PASSWORD)
                    except OSError:
                        pass
        if password is None:
            password = random_password(12)
            if fs is not None:
                _write_password(fs, self.password_path, password)
                # no card: this boot's password only, still on the display
        self.state.web_password_generated = password
        return password

    def dispatch(self, request):
        """Auth, routing, method and origin checks: every request goes through here."""
        return web_routes.dispatch(self, request)


def _read_password(fs, path):
    """A stored generated password (8-64 printable characters), else None."""
    try:
        f = fs.open(path, "rb")
        try:
            password = bytes(f.read(65)).decode().strip()
        finally:
            f.close()
    except (OSError, UnicodeError):
        return None
    if not 8 <= len(password) <= 64 or any(config_mod.is_control(ch) for ch in password):
        return None
    return password


def _write_password(fs, path, password):
    from ..configvalues import write_private

    try:
        write_private(fs, path, password.encode())
    except OSError:
        return False
    return True


def _close(conn):
    try:
        conn.close()
    except OSError:
        pass


def _client(request):
    addr = request.client_address
    return addr[0] if addr else None


def _too_slow(job, elapsed):
    """A transfer that averages less than _MIN_RATE after the grace time holds a slot for
    nothing (a slow upload or a client that reads nothing): drop it."""
    if elapsed <= _GRACE_MS:
        return False
    return job.moved * 1000 < (elapsed - _GRACE_MS) * _MIN_RATE
