# SPDX-License-Identifier: MIT
"""InfluxDB output: line protocol over HTTP (``adafruit_requests``), batched, backfilled.

``on_reading()`` formats one telegram as one line - ``<measurement>,host=<HOSTNAME> <fields>
<epoch>`` with every numeric value of the reading as a field named by its OBIS code
(``1-0:1.8.0=10860961``), the derived values and the board's temperature/humidity/RSSI - into a
bounded byte ring (``outputs.ring``; no I/O). ``poll()``, when due, POSTs the oldest lines as one
body: InfluxDB 1.x ``/write?db=INFLUX_DB`` (``INFLUX_TOKEN = "user:password"`` for a server with
authentication), or 2.x ``/api/v2/write?org=INFLUX_ORG&bucket=INFLUX_DB`` with
``Authorization: Token INFLUX_TOKEN`` when ``INFLUX_ORG`` is set; timestamps in seconds. After an
outage the points the full ring dropped are read back from the SD card (the CSV backfill Graphite
uses) a few rows per poll; InfluxDB overwrites a point with the same time, so a retry is safe.

Never blocks the loop longer than Graphite does: one request per poll, the whole of it (connect,
send, answer) under a deadline of ``_POLL_BUDGET_MS`` that our sockets enforce
(``smartmeter.httpio``), each wait at most ``_IO_TIMEOUT_S``; failures back off 1 s .. 60 s.
All numbers are written as floats (no ``i`` suffix): a value that is an integer in one telegram
and a decimal in a CSV row can then never make a field-type conflict.
"""

from .. import httpio
from ..protocol import reading as _r
from .ring import BatchSink

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_QUEUE_BYTES = const(12288)  # ~24 telegrams of a three-phase meter; the CSV covers the rest
_LINE_BYTES = const(1024)  # one telegram's line
_BODY_BYTES = const(4096)  # one POST
_POLL_BUDGET_MS = const(600)  # the whole request, like Graphite's poll budget (a pass: 1 s)
_IO_TIMEOUT_S = 0.5  # connect, each send, each wait for the answer
_BATCH_MS = const(10_000)  # one request per 10 s unless the queue is backed up
_BACKFILL_ROWS = const(8)  # CSV rows per poll

NAME = "influx"
PROBLEMS = (
    (
        "influx_auth",
        ("auth",),
        {
            "en": ("InfluxDB login refused", "Check INFLUX_TOKEN"),
            "de": ("InfluxDB-Login abgelehnt", "INFLUX_TOKEN pruefen"),
        },
    ),
    (
        "influx",
        ("error", "unresolved", "rejected"),
        {
            "en": ("InfluxDB unreachable", "Check INFLUX_URL/DB"),
            "de": ("InfluxDB nicht erreichbar", "INFLUX_URL/DB pruefen"),
        },
    ),
)


def _quote(text):
    """URL query escaping of a name (letters, digits and ``-_.~`` stay)."""
    out = []
    for ch in text.encode():
        c = chr(ch)
        if c.isalpha() and ch < 128 or c.isdigit() or c in "-_.~":
            out.append(c)
        else:
            out.append("%%%02X" % ch)
    return "".join(out)


def _escape(text):
    """Line-protocol escaping of a measurement, tag key or tag value."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def _request(config):
    """(url, headers) of the write endpoint for the settings."""
    base = config.INFLUX_URL.rstrip("/")
    token = config.INFLUX_TOKEN
    if config.INFLUX_ORG:
        url = "%s/api/v2/write?org=%s&bucket=%s&precision=s" % (
            base,
            _quote(config.INFLUX_ORG),
            _quote(config.INFLUX_DB),
        )
        headers = {"Authorization": "Token " + token} if token else {}
    else:
        url = "%s/write?db=%s&precision=s" % (base, _quote(config.INFLUX_DB))
        headers = {}
        if token:
            import binascii

            auth = binascii.b2a_base64(token.encode()).strip().decode()
            headers["Authorization"] = "Basic " + auth
    headers["Content-Type"] = "text/plain; charset=utf-8"
    headers["Connection"] = "close"
    return url, headers


class InfluxSink(BatchSink):
    """Batching, backing-off InfluxDB writer. See the module text.

    :param clock: the app's clock (``ticks_ms()``): schedule and the request deadline
    :param backfill: ``backfill(since, until, max_rows)`` -> CSV rows (``datalog.csvlog``)
    :param service: run while waiting for the server (``App.service_uart``)
    """

    name = NAME

    def __init__(
        self,
        config,
        pool,
        state,
        clock,
        backfill=None,
        ssl_context=None,
        service=None,
        queue_bytes=_QUEUE_BYTES,
    ):
        super().__init__(NAME, PROBLEMS, state, clock, backfill, queue_bytes)
        self._line = bytearray(_LINE_BYTES)
        self._lmv = memoryview(self._line)
        self._body = bytearray(_BODY_BYTES)
        self._bmv = memoryview(self._body)
        self._deadline = httpio.Deadline(clock.ticks_ms, service)
        self._pool = pool
        self._ssl_context = ssl_context
        self._session = None
        self.requests = 0
        self.rejected = 0  # points the server refused (HTTP 400): dropped, counted
        self.truncated = 0  # fields that did not fit a line
        self._settings(config)

    def _settings(self, config):
        enabled = bool(config.INFLUX_URL)
        self._start(enabled, config.INFLUX_INTERVAL_S, _BATCH_MS)
        self._offset_wh = config.ENERGY_OFFSET_WH or 0
        head = _escape(config.INFLUX_MEASUREMENT or "smartmeter")
        head += ",host=" + _escape(config.HOSTNAME or "smartmeter") + " "
        self._head = head.encode()
        self.url, self.headers = _request(config) if enabled else ("", {})

    # -- formatting (no I/O) ----------------------------------------------------------------
    def _format(self, epoch, sources, offset_wh, dst=None, pos=0):
        """One line into ``dst`` (default: the line buffer) at ``pos``: (end, fields)."""
        mv = self._lmv if dst is None else dst
        cap = len(mv)
        head = self._head
        if pos + len(head) >= cap:
            return pos, 0
        end = pos + len(head)
        mv[pos:end] = head
        fields = 0
        seen = set()
        for source in sources:
            if not source:
                continue
            for key, value in source.items():
                if key in seen or isinstance(value, bool):
                    continue
                if not isinstance(value, (int, float)) or not -1e15 < value < 1e15:
                    continue  # text (meter number, device name), None, NaN or inf
                seen.add(key)
                if key == _r.A_PLUS and offset_wh:
                    value += offset_wh
                name = key.encode()
                text = b"=%d" % value if isinstance(value, int) else b"=%.3f" % value
                sep = 1 if fields else 0
                if end + sep + len(name) + len(text) + 24 > cap:
                    self.truncated += 1
                    continue
                if sep:
                    mv[end] = 44  # ","
                    end += 1
                mv[end : end + len(name)] = name
                end += len(name)
                mv[end : end + len(text)] = text
                end += len(text)
                fields += 1
        if not fields:
            return pos, 0
        ts = b" %d\n" % epoch
        mv[end : end + len(ts)] = ts
        return end + len(ts), fields

    def on_reading(self, reading, epoch_utc, extras):
        """Queue the telegram's line (no I/O). Skipped without a UTC epoch."""
        epoch = self._accept(epoch_utc)
        if epoch is None:
            return
        sources = (reading.values, reading.derived, extras)
        end, fields = self._format(epoch, sources, self._offset_wh)
        self.ring.push(self._lmv, end, epoch, fields)
        self._sync()

    # -- sending ----------------------------------------------------------------------------
    def _session_now(self):
        if self._session is None:
            self._session = httpio.session(self._pool, self._deadline, self.url, self._ssl_context)
        return self._session

    def _post(self, n):
        """POST ``body[:n]``; returns the HTTP status (the answer is read and closed)."""
        session = self._session_now()
        self.requests += 1
        response = session.post(
            self.url, data=self._bmv[0:n], headers=self.headers, timeout=_IO_TIMEOUT_S
        )
        try:
            code = response.status_code
            text = ""
            if code >= 300:
                text = bytes(response.content[:80]).decode("utf-8", "replace").strip()
        finally:
            httpio.close(session, response)
        if code in (401, 403):
            raise _Refused("auth", "HTTP %d: check INFLUX_TOKEN" % code)
        if code == 400:
            raise _Refused("rejected", "HTTP 400 " + text)
        if code >= 300:
            raise OSError("HTTP %d %s" % (code, text))
        return code

    def _send_queue(self):
        ring = self.ring
        n, records, points = ring.copy_out(self._body, _BODY_BYTES)
        if not records:
            return
        try:
            self._post(n)
        except _Refused as exc:
            if exc.args[0] == "rejected":  # bad data is not sent again: drop it, counted
                self.rejected += points
                ring.dropped += points
                ring.pop(records)
            raise
        self.sent += points
        ring.pop(records)

    def _send_backfill(self):
        rows = self._backfill_rows(_BACKFILL_ROWS)
        if rows is None:
            return
        body = [0, 0]  # bytes, points

        def emit(epoch, values, extras):
            if not self._due_bucket(epoch, "_bf_bucket"):
                return
            derived = self._csv_derived(values)  # CSV A+ includes the offset already
            end, fields = self._format(epoch, (values, derived, extras), 0, self._bmv, body[0])
            body[0] = end
            body[1] += fields

        next_from = self.ring.refill(rows, _BACKFILL_ROWS, emit)
        if body[0]:
            self._post(body[0])
            self.sent += body[1]
            self.backfilled += body[1]
        self._backfill_done(next_from)

    def poll(self, now_ms):
        """When due: one request with the oldest lines (or a backfill slice). Bounded time.

        :returns: True if the server took something
        """
        if not self._poll_due(now_ms):
            return False
        t0 = self._ticks_ms()
        self._deadline.arm(_POLL_BUDGET_MS)
        try:
            if self.ring.count:
                self._send_queue()
            elif self._gap_pending():
                self._send_backfill()
        except _Refused as exc:
            self._fail(now_ms, exc.args[0], exc.args[1])
            return False
        except Exception as exc:  # noqa: BLE001 - OSError, gaierror, OutOfRetries, ...
            self._fail(now_ms, *self._classify(exc))
            return False
        self._succeeded(now_ms, t0)
        return True

    def _classify(self, exc):
        cause = getattr(exc, "__cause__", None) or exc
        name = type(cause).__name__
        if name == "gaierror":
            return "unresolved", "cannot resolve INFLUX_URL"
        text = str(cause) or name
        return "error", text[:60]

    def _fail(self, now_ms, state, text):
        httpio.drop_sockets(self._session)
        super()._fail(now_ms, state, text)


class _Refused(Exception):
    """The server answered but will not take it: (state, text)."""


def make(app, hw, cfg, state):
    """The InfluxDB output as ``app.build`` starts it (config.OUTPUTS)."""
    return InfluxSink(
        cfg, hw.pool, state, hw.clock, app.backfill(), hw.ssl_context, app.service_uart
    )
