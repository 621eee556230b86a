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

from array import array

from ..protocol import reading as _r
from ..protocol.reading import A_PLUS, P_MINUS, P_PLUS, Reading
from ..timeutil import ticks_add
from ..timeutil import ticks_diff as _ticks_diff29

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_QUEUE_BYTES = const(16384)  # ~14 telegrams with all metrics; CSV backfill covers the rest
_MAX_TELEGRAMS = const(64)
_SCRATCH_BYTES = const(4096)  # one telegram's (or one backfill row's) lines
_IO_TIMEOUT_MS = const(500)  # connect and each send
_POLL_BUDGET_MS = const(1000)  # one poll() never takes much longer than this
_BATCH_BYTES = const(8192)  # queued bytes per poll; more -> next poll at once
_BATCH_MS = const(5000)  # at most one connection per 5 s unless the queue is backed up
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60000)
_BACKFILL_ROWS = const(8)  # CSV rows per poll
_STATUS_EVERY_S = const(60)
_ECONNREFUSED = const(111)  # Linux and lwIP
_ETIMEDOUT = const(110)
_EAGAIN = const(11)

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
    ("x", "rssi", "data.rssi", _INT),
    ("x", "temperature", "data.pcb_t", 2),
    ("x", "humidity", "data.pcb_rh", 2),
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
)
# Status counters, sent at most every _STATUS_EVERY_S as <prefix>.status.<name>
STATUS = tuple(
    (
        "telegrams decoded checksum_errors framing_errors wrong_key tag_mismatch parse_errors "
        "duplicates uart_overflows csv_errors csv_lost graphite_dropped graphite_failed "
        "sink_errors memory_errors slowest_pass_ms mem_free_min"
    ).split()
)


def _default_ticks():
    try:
        from supervisor import ticks_ms  # CircuitPython

        return ticks_ms, _ticks_diff29
    except ImportError:
        pass
    import time

    if hasattr(time, "ticks_ms"):  # MicroPython
        return time.ticks_ms, getattr(time, "ticks_diff")
    return (lambda: int(time.monotonic() * 1000) & 0x1FFFFFFF), _ticks_diff29


class _Budget(OSError):
    pass


def _errno(exc):
    code = getattr(exc, "errno", None)
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
    return code


class GraphiteSink:
    """Batching, backing-off Carbon plaintext client. See the module text.

    :ivar sent: points sent  :ivar failed: failed pushes (resolve, connect or send)
    :ivar queued: points waiting in memory  :ivar dropped: points dropped from the full queue
    :ivar connections: sockets opened  :ivar backfilled: points re-sent from the CSV
    """

    name = "graphite"

    def __init__(
        self,
        config,
        pool,
        state,
        backfill=None,
        ticks_ms=None,
        ticks_diff=None,
        queue_bytes=_QUEUE_BYTES,
    ):
        self.pool = pool
        self.state = state
        self._backfill = backfill
        self._loop_diff = ticks_diff or _ticks_diff29  # for poll()'s now_ms (the app's clock)
        if ticks_ms is None:
            ticks_ms, default_diff = _default_ticks()
            ticks_diff = ticks_diff or default_diff
        self._ticks_ms = ticks_ms  # measures time spent inside poll()
        self._diff = ticks_diff or _ticks_diff29
        self.host = getattr(config, "GRAPHITE_HOST", "") or ""
        self.port = getattr(config, "GRAPHITE_PORT", 2003)
        self.enabled = bool(self.host)
        self.interval_s = getattr(config, "GRAPHITE_INTERVAL_S", 0) or 0
        self.batch_ms = self.interval_s * 1000 if self.interval_s else _BATCH_MS
        self._offset_wh = getattr(config, "ENERGY_OFFSET_WH", 0) or 0
        prefix = getattr(config, "GRAPHITE_PREFIX", "smartmeter") or ""
        prefix = (prefix.strip(".") + ".") if prefix.strip(".") else ""
        self._paths = tuple((prefix + m[2] + " ").encode() for m in METRICS)
        self._status_paths = tuple((prefix + "status." + n + " ").encode() for n in STATUS)
        self._send_time_path = (prefix + "data.send_time ").encode()
        # byte ring of formatted telegrams + per-telegram (epoch, bytes, lines)
        self._cap = queue_bytes
        self._ring = bytearray(queue_bytes)
        self._rmv = memoryview(self._ring)
        self._rhead = 0
        self._rlen = 0
        self._tep = array("l", [0] * _MAX_TELEGRAMS)
        self._tlen = array("H", [0] * _MAX_TELEGRAMS)
        self._tlines = array("H", [0] * _MAX_TELEGRAMS)
        self._thead = 0
        self._tcount = 0
        self._scratch = bytearray(_SCRATCH_BYTES)
        self._smv = memoryview(self._scratch)
        self._spos = 0
        self._slines = 0
        # counters
        self.sent = 0
        self.failed = 0
        self.queued = 0
        self.dropped = 0
        self.connections = 0
        self.backfilled = 0
        self.backfill_errors = 0
        self.truncated = 0  # lines that did not fit the scratch buffer
        self.last_send_ms = None
        # timing and error state
        self._addr = None  # cached getaddrinfo entry
        self._fails = 0
        self._next_ms = None  # ticks before which poll() does nothing
        self._more = False  # the last push left data behind: next poll is due at once
        self._last_bucket = None
        self._bf_bucket = None
        self._last_status = None
        self._gap_from = None  # epochs [gap_from, gap_until) were dropped: re-send from the CSV
        self._gap_until = None
        if state is not None:
            state.graphite_state = "pending" if self.enabled else "disabled"

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
        counters = getattr(self.state, "counters", None)
        if counters is not None:
            for k in range(len(STATUS)):
                value = getattr(counters, STATUS[k], None)
                if value is not None and value >= 0:
                    self._put(self._status_paths[k], value, _INT, ts)
        self._put(self._send_time_path, self.last_send_ms, _INT, ts)

    def _due_bucket(self, epoch, attr):
        """Interval filter: the first telegram of each GRAPHITE_INTERVAL_S bucket passes."""
        if not self.interval_s:
            return True
        bucket = epoch // self.interval_s
        if bucket == getattr(self, attr):
            return False
        setattr(self, attr, bucket)
        return True

    def on_reading(self, reading, epoch_utc, extras):
        """Queue one telegram's lines (no I/O). Skipped without a UTC epoch."""
        if not self.enabled or epoch_utc is None:
            return
        epoch = int(epoch_utc)
        if not self._due_bucket(epoch, "_last_bucket"):
            return
        ts = self._format(epoch, reading.values, reading.derived, extras, self._offset_wh)
        self._format_status(epoch, ts)
        self._push(epoch)
        self._sync_counters()

    # -- the byte ring ----------------------------------------------------------------------
    def _push(self, epoch):
        n = self._spos
        if not n:
            return
        cap = self._cap
        if n > cap:
            self.dropped += self._slines
            self._mark_gap(epoch)
            return
        while self._tcount and (self._rlen + n > cap or self._tcount >= _MAX_TELEGRAMS):
            self._mark_gap(self._tep[self._thead])
            self.dropped += self._tlines[self._thead]
            self._pop()
        start = (self._rhead + self._rlen) % cap
        first = min(n, cap - start)
        self._rmv[start : start + first] = self._smv[0:first]
        if first < n:
            self._rmv[0 : n - first] = self._smv[first:n]
        self._rlen += n
        i = (self._thead + self._tcount) % _MAX_TELEGRAMS
        self._tep[i] = epoch
        self._tlen[i] = n
        self._tlines[i] = self._slines
        self._tcount += 1
        self.queued += self._slines

    def _pop(self):
        i = self._thead
        self._rhead = (self._rhead + self._tlen[i]) % self._cap
        self._rlen -= self._tlen[i]
        self.queued -= self._tlines[i]
        self._thead = (i + 1) % _MAX_TELEGRAMS
        self._tcount -= 1
        if not self._tcount:
            self._rhead = 0

    def _mark_gap(self, epoch):
        if self._gap_from is None or epoch < self._gap_from:
            self._gap_from = epoch
        if self._gap_until is None or epoch + 1 > self._gap_until:
            self._gap_until = epoch + 1

    @property
    def gap(self):
        """(from_epoch, until_epoch) still to re-send from the CSV, or None."""
        if self._gap_from is None:
            return None
        return (self._gap_from, self._gap_until)

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
            left = _POLL_BUDGET_MS - self._diff(self._ticks_ms(), t0)
            if left <= 0:
                raise _Budget("poll budget")
            sock.settimeout(min(_IO_TIMEOUT_MS, left) / 1000)
            n = sock.send(mv[off:])
            if n is None:  # some ports return None for "all of it"
                n = total - off
            if n <= 0:
                raise OSError(_EAGAIN)
            off += n

    def _send_queue(self, sock, t0):
        cap = self._cap
        budget = _BATCH_BYTES
        rmv = self._rmv
        while self._tcount and budget > 0:
            i = self._thead
            n = self._tlen[i]
            start = self._rhead
            end = start + n
            if end <= cap:
                self._send_all(sock, rmv[start:end], t0)
            else:
                self._send_all(sock, rmv[start:cap], t0)
                self._send_all(sock, rmv[0 : end - cap], t0)
            self.sent += self._tlines[i]
            self._pop()
            budget -= n

    def _send_backfill(self, sock, t0):
        since, until = self._gap_from, self._gap_until
        if since is None or until is None:
            return
        try:
            rows = self._backfill(since, until, _BACKFILL_ROWS)
        except Exception as exc:  # noqa: BLE001 - an SD fault must not count as a network one
            # Give this gap up: retrying every pass would hammer a failing card.
            self.backfill_errors += 1
            self._gap_from = self._gap_until = None
            self._note("backfill: %s" % (str(exc) or type(exc).__name__))
            return
        count = 0
        done = since  # every row before this epoch has been sent
        for row in rows:
            count += 1
            epoch, values = int(row[0]), row[1]
            if epoch < done or epoch >= until:
                continue
            if self._due_bucket(epoch, "_bf_bucket"):
                extras = row[2] if len(row) > 2 else values
                derived = values
                if _r.DERIVED_PF not in values and _r.APPARENT_POWER not in values:
                    r = Reading()
                    r.values = values
                    derived = r.derive()
                self._format(epoch, values, derived, extras, 0)  # CSV A+ includes the offset
                self._send_all(sock, self._smv[0 : self._spos], t0)
                self.sent += self._slines
                self.backfilled += self._slines
            done = self._gap_from = epoch + 1
        if count < _BACKFILL_ROWS or done >= until or done == since:
            self._gap_from = self._gap_until = None
            self._bf_bucket = None

    def _note(self, text):
        if self.state is not None:
            self.state.last_errors["graphite"] = text[:60]

    def _sync_counters(self):
        counters = getattr(self.state, "counters", None)
        if counters is not None:
            counters.graphite_sent = self.sent
            counters.graphite_failed = self.failed
            counters.graphite_queued = self.queued
            counters.graphite_dropped = self.dropped

    def _fail(self, now_ms, kind, text):
        self.failed += 1
        self._fails += 1
        delay = _BACKOFF_MIN_MS << min(self._fails - 1, 6)
        self._next_ms = ticks_add(now_ms, min(delay, _BACKOFF_MAX_MS))
        self._more = False
        st = self.state
        if st is not None:
            st.graphite_state = kind
        self._note(text)

    def poll(self, now_ms):
        """When due: one connection, send a batch (and a backfill slice), close. Bounded time.

        :returns: True if something was sent
        """
        if not self.enabled:
            return False
        if self._next_ms is not None and self._loop_diff(now_ms, self._next_ms) < 0:
            return False
        gap = self._backfill is not None and self._gap_from is not None
        if not self._tcount and not gap:
            return False
        t0 = self._ticks_ms()
        pool = self.pool
        try:
            addr = self._resolve()
        except Exception:  # noqa: BLE001 - gaierror, OSError, whatever the port raises
            self._fail(now_ms, "unresolved", "cannot resolve %s" % self.host)
            self._sync_counters()
            return False
        sock = None
        try:
            sock = pool.socket(addr[0], getattr(pool, "SOCK_STREAM", 1))
            self.connections += 1
            sock.settimeout(_IO_TIMEOUT_MS / 1000)
            sock.connect(addr[4])
            self._send_queue(sock, t0)
            if (
                self._backfill is not None
                and not self._tcount
                and self._gap_from is not None
                and self._diff(self._ticks_ms(), t0) < _POLL_BUDGET_MS // 2
            ):
                self._send_backfill(sock, t0)
        except OSError as exc:
            code = _errno(exc)
            if code == _ECONNREFUSED:
                text = "port %d refused" % self.port
            elif isinstance(exc, _Budget) or code in (_ETIMEDOUT, _EAGAIN) or "timed" in str(exc):
                text = "timeout %s:%d" % (self.host, self.port)
            else:
                text = "%s:%d %s" % (self.host, self.port, str(exc) or type(exc).__name__)
                self._addr = None  # re-resolve next time (behind the back-off)
            self._fail(now_ms, "error", text)
            self._sync_counters()
            return False
        finally:
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self.last_send_ms = self._diff(self._ticks_ms(), t0)
        self._fails = 0
        self._more = bool(self._tcount) or (gap and self._gap_from is not None)
        self._next_ms = ticks_add(now_ms, 0 if self._more else self.batch_ms)
        st = self.state
        if st is not None:
            st.graphite_state = "ok"
            if st.last_errors.get("graphite"):
                st.last_errors["graphite"] = ""
        self._sync_counters()
        return True
