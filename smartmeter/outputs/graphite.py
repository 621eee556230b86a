# SPDX-License-Identifier: MIT
"""Graphite sink: Carbon plaintext lines (``path value timestamp\\n``) over TCP, batched.

``on_reading()`` formats one telegram's lines into a bounded byte ring (no I/O). ``poll()``, when
due, opens one connection, sends whole telegrams oldest first, then - after an outage - one
bounded slice of CSV rows through the ``backfill`` callable, and closes the socket in ``finally``.
Every socket call has a <= 0.5 s timeout and the whole ``poll()`` is cut off after
``_POLL_BUDGET_MS``; failures back off exponentially (1 s .. 60 s) and never block the meter loop.
When the ring is full the oldest telegram is dropped (counted) and its epoch range is remembered
so the backfill re-sends it from the SD card, the source of truth.

Metric paths default to the original firmware's (``smartmeter.strom.L1`` ...), timestamps are the
meter's UTC epoch, energy is sent as integer Wh/varh, other floats with fixed decimals.
"""

from ..netutil import EAGAIN, ECONNREFUSED, errno_of, timed_out
from ..protocol import reading as _r
from ..protocol.reading import A_PLUS, P_MINUS, P_PLUS
from ..timeutil import ticks_diff
from .ring import BatchSink

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_QUEUE_BYTES = const(16384)  # ~14 telegrams with all metrics; CSV backfill covers the rest
_SCRATCH_BYTES = const(4096)  # one telegram's (or one backfill row's) lines
_IO_TIMEOUT_MS = const(500)  # connect and each send
_POLL_BUDGET_MS = const(600)  # one poll() never takes much longer than this (a pass: 1 s)
_BATCH_BYTES = const(8192)  # queued bytes per poll; more -> next poll at once
_BATCH_MS = const(5000)  # at most one connection per 5 s unless the queue is backed up
_BACKFILL_ROWS = const(8)  # CSV rows per poll
_STATUS_EVERY_S = const(60)

_INT = const(-1)
# (source, key, path, decimals): source v=reading.values d=derived x=extras n=net power
# The first 14 are the original firmware's paths, in its order; then what it lacked.
METRICS = (
    ("v", _r.I_L1, "strom.L1", 2),
    ("v", _r.I_L2, "strom.L2", 2),
    ("v", _r.I_L3, "strom.L3", 2),
    ("v", _r.P_PLUS, "momentanleistung.plus", _INT),
    ("v", _r.A_PLUS, "wirkenergie.plus", _INT),  # + ENERGY_OFFSET_WH, like the original
    ("v", _r.POWER_FACTOR, "cosphi", 3),  # as the meter reports it
    ("x", _r.RSSI, "data.rssi", _INT),
    ("x", _r.TEMPERATURE, "data.pcb_t", 2),
    ("x", _r.HUMIDITY, "data.pcb_rh", 2),
    ("v", _r.U_L1, "spannung.L1", 1),
    ("v", _r.U_L2, "spannung.L2", 1),
    ("v", _r.U_L3, "spannung.L3", 1),
    ("v", _r.P_MINUS, "momentanleistung.minus", _INT),
    ("v", _r.A_MINUS, "wirkenergie.minus", _INT),
    ("n", None, "momentanleistung.netto", _INT),  # P+ - P-: import positive, export negative
    ("v", _r.Q_PLUS, "blindleistung.plus", _INT),
    ("v", _r.Q_MINUS, "blindleistung.minus", _INT),
    ("v", _r.R_PLUS, "blindenergie.plus", _INT),
    ("v", _r.R_MINUS, "blindenergie.minus", _INT),
    ("d", _r.APPARENT_POWER, "scheinleistung", _INT),
    ("d", _r.DERIVED_PF, "leistungsfaktor", 3),  # (P+ - P-) / S, signed
    # tariff registers, where the meter sends them (T210-D-r; AMIS sends reactive T1)
    ("v", "1-0:1.8.1", "wirkenergie.plus_t1", _INT),
    ("v", "1-0:1.8.2", "wirkenergie.plus_t2", _INT),
    ("v", "1-0:2.8.1", "wirkenergie.minus_t1", _INT),
    ("v", "1-0:2.8.2", "wirkenergie.minus_t2", _INT),
    ("v", "1-0:3.8.1", "blindenergie.plus_t1", _INT),
    ("v", "1-0:3.8.2", "blindenergie.plus_t2", _INT),
    ("v", "1-0:4.8.1", "blindenergie.minus_t1", _INT),
    ("v", "1-0:4.8.2", "blindenergie.minus_t2", _INT),
)
# Status counters, sent at most every _STATUS_EVERY_S as <prefix>.status.<name>; then this
# output's own as status.graphite_dropped / status.graphite_failed (dashboard names)
STATUS = tuple(
    (
        "telegrams decoded checksum_errors framing_errors wrong_key tag_mismatch parse_errors "
        "duplicates uart_overflows csv_errors csv_lost sink_errors memory_errors "
        "slowest_pass_ms mem_free_min"
    ).split()
)
OWN_STATUS = ("dropped", "failed")  # status.graphite_<name>, from this output's SinkStatus
NAME = "graphite"
PROBLEMS = (
    (
        "graphite",
        ("error", "unresolved"),
        {
            "en": ("Graphite unreachable", "Check GRAPHITE_HOST"),
            "de": ("Graphite nicht erreichbar", "GRAPHITE_HOST pruefen"),
        },
    ),
)


class _Budget(OSError):
    pass


class GraphiteSink(BatchSink):
    """Batching, backing-off Carbon plaintext client. See the module text.

    :ivar sent: points sent  :ivar failed: failed pushes (resolve, connect or send)
    :ivar queued: points waiting in memory  :ivar dropped: points dropped from the full queue
    :ivar connections: sockets opened  :ivar backfilled: points re-sent from the CSV
    """

    name = NAME

    def __init__(self, config, pool, state, clock, backfill=None, queue_bytes=_QUEUE_BYTES):
        super().__init__(NAME, PROBLEMS, state, clock, backfill, queue_bytes)
        self.pool = pool
        self._scratch = bytearray(_SCRATCH_BYTES)
        self._smv = memoryview(self._scratch)
        self._spos = 0
        self._slines = 0
        self.connections = 0
        self.truncated = 0  # lines that did not fit the scratch buffer
        self._addr = None  # cached getaddrinfo entry
        self._last_status = None
        self._settings(config)

    def _settings(self, config):
        self.host = getattr(config, "GRAPHITE_HOST", "") or ""
        self.port = getattr(config, "GRAPHITE_PORT", 2003)
        self._start(bool(self.host), getattr(config, "GRAPHITE_INTERVAL_S", 0), _BATCH_MS)
        self._offset_wh = getattr(config, "ENERGY_OFFSET_WH", 0) or 0
        prefix = getattr(config, "GRAPHITE_PREFIX", "smartmeter") or ""
        prefix = (prefix.strip(".") + ".") if prefix.strip(".") else ""
        self._paths = tuple((prefix + m[2] + " ").encode() for m in METRICS)
        self._status_paths = tuple((prefix + "status." + n + " ").encode() for n in STATUS)
        self._own_paths = tuple(
            (prefix + "status.graphite_" + n + " ").encode() for n in OWN_STATUS
        )
        self._send_time_path = (prefix + "data.send_time ").encode()

    # -- formatting (no I/O) ----------------------------------------------------------------
    def _put(self, path, value, decimals, ts):
        if not isinstance(value, (int, float)) or not -1e15 < value < 1e15:
            return  # absent, text, NaN or inf
        if decimals == _INT:
            text = b"%d" % round(value)
        elif decimals == 1:
            text = b"%.1f" % value
        elif decimals == 2:
            text = b"%.2f" % value
        else:
            text = b"%.3f" % value
        pos = self._spos
        end = pos + len(path) + len(text) + len(ts)
        if end > _SCRATCH_BYTES:
            self.truncated += 1
            return
        smv = self._smv
        smv[pos : pos + len(path)] = path
        pos += len(path)
        smv[pos : pos + len(text)] = text
        pos += len(text)
        smv[pos:end] = ts
        self._spos = end
        self._slines += 1

    def _format(self, epoch, values, derived, extras, offset_wh):
        """Format one telegram's lines into the scratch buffer; returns the timestamp text."""
        self._spos = 0
        self._slines = 0
        ts = b" %d\n" % epoch
        paths = self._paths
        for k in range(len(METRICS)):
            src, key, _, dec = METRICS[k]
            if src == "v":
                value = values.get(key)
                if key == A_PLUS and value is not None:
                    value += offset_wh
            elif src == "d":
                value = derived.get(key) if derived else None
            elif src == "x":
                value = extras.get(key) if extras else None
            else:
                p = values.get(P_PLUS)
                value = None if p is None else p - values.get(P_MINUS, 0)
            self._put(paths[k], value, dec, ts)
        return ts

    def _format_status(self, epoch, ts):
        last = self._last_status
        if last is not None and 0 <= epoch - last < _STATUS_EVERY_S:
            return
        self._last_status = epoch
        counters = self.state.counters
        for k in range(len(STATUS)):
            value = getattr(counters, STATUS[k], None)
            if value is not None and value >= 0:
                self._put(self._status_paths[k], value, _INT, ts)
        for k in range(len(OWN_STATUS)):
            self._put(self._own_paths[k], getattr(self.status, OWN_STATUS[k]), _INT, ts)
        self._put(self._send_time_path, self.last_send_ms, _INT, ts)

    def on_reading(self, reading, epoch_utc, extras):
        """Queue one telegram's lines (no I/O). Skipped without a UTC epoch."""
        epoch = self._accept(epoch_utc)
        if epoch is None:
            return
        ts = self._format(epoch, reading.values, reading.derived, extras, self._offset_wh)
        self._format_status(epoch, ts)
        self.ring.push(self._smv, self._spos, epoch, self._slines)
        self._sync()

    # -- sending ----------------------------------------------------------------------------
    def _resolve(self):
        if self._addr is None:
            pool = self.pool
            infos = pool.getaddrinfo(self.host, self.port)
            inet = getattr(pool, "AF_INET", 2)
            for info in infos:
                if info[0] == inet:
                    self._addr = info
                    break
            else:
                if not infos:
                    raise OSError("no address")
                self._addr = infos[0]
        return self._addr

    def _send_all(self, sock, mv, t0):
        off = 0
        total = len(mv)
        while off < total:
            left = _POLL_BUDGET_MS - ticks_diff(self._ticks_ms(), t0)
            if left <= 0:
                raise _Budget("poll budget")
            sock.settimeout(min(_IO_TIMEOUT_MS, left) / 1000)
            n = sock.send(mv[off:])
            if n is None:  # some ports return None for "all of it"
                n = total - off
            if n <= 0:
                raise OSError(EAGAIN)
            off += n

    def _send_queue(self, sock, t0):
        ring = self.ring
        budget = _BATCH_BYTES
        while ring.count and budget > 0:
            part, rest, lines = ring.oldest()
            self._send_all(sock, part, t0)
            if rest:
                self._send_all(sock, rest, t0)
            self.sent += lines
            ring.pop()
            budget -= len(part) + len(rest)

    def _send_backfill(self, sock, t0):
        rows = self._backfill_rows(_BACKFILL_ROWS)
        if rows is None:
            return

        def emit(epoch, values, extras):
            if not self._due_bucket(epoch, "_bf_bucket"):
                return
            # CSV A+ includes the offset already
            self._format(epoch, values, self._csv_derived(values), extras, 0)
            self._send_all(sock, self._smv[0 : self._spos], t0)
            self.sent += self._slines
            self.backfilled += self._slines

        self._backfill_done(self.ring.refill(rows, _BACKFILL_ROWS, emit))

    def _error_text(self, exc):
        """Short text for a failed push; forgets the address unless it was refused/timed out."""
        if errno_of(exc) == ECONNREFUSED:
            return "port %d refused" % self.port
        if isinstance(exc, _Budget) or timed_out(exc):
            return "timeout %s:%d" % (self.host, self.port)
        self._addr = None  # re-resolve next time (behind the back-off)
        return "%s:%d %s" % (self.host, self.port, str(exc) or type(exc).__name__)

    def _push_batch(self, addr, t0):
        """One connection: the queue (a batch of it), then a backfill slice if time is left."""
        pool = self.pool
        sock = pool.socket(addr[0], getattr(pool, "SOCK_STREAM", 1))
        try:
            self.connections += 1
            sock.settimeout(_IO_TIMEOUT_MS / 1000)
            sock.connect(addr[4])
            self._send_queue(sock, t0)
            if (
                not self.ring.count
                and self._gap_pending()
                and ticks_diff(self._ticks_ms(), t0) < _POLL_BUDGET_MS // 2
            ):
                self._send_backfill(sock, t0)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def poll(self, now_ms):
        """When due: one connection, send a batch (and a backfill slice), close. Bounded time.

        :returns: True if something was sent
        """
        if not self._poll_due(now_ms):
            return False
        t0 = self._ticks_ms()
        try:
            addr = self._resolve()
        except Exception:  # noqa: BLE001 - gaierror, OSError, whatever the port raises
            self._fail(now_ms, "unresolved", "cannot resolve %s" % self.host)
            return False
        try:
            self._push_batch(addr, t0)
        except OSError as exc:
            self._fail(now_ms, "error", self._error_text(exc))
            return False
        self._succeeded(now_ms, t0)
        return True


def make(app, hw, cfg, state):
    """The Graphite output as ``app.build`` starts it (config.OUTPUTS)."""
    return GraphiteSink(cfg, hw.pool, state, hw.clock, app.backfill())
