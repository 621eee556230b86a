# SPDX-License-Identifier: MIT
"""What the batching outputs (Graphite, InfluxDB) share, so each keeps only its wire format.

:class:`BatchSink` holds the bounded :class:`ByteRing`, the status entry (``state.add_sink``),
the interval filter, the backoff and the CSV backfill of a gap. A subclass formats into the
ring in ``on_reading`` and sends in ``poll``; it calls ``_poll_due(now_ms)`` first,
``_backfill_rows(n)`` / ``_csv_derived(values)`` for a gap slice, then ``_succeeded(now_ms,
t0)`` or ``_fail(now_ms, state, text)``. (One module: a second would cost its own RAM.)

:class:`ByteRing` is a bounded byte ring of records (one per telegram).

Preallocated once: the bytes in one ``bytearray`` ring, the per-record index (epoch, length,
items) in fixed ``array``s. ``push`` copies a formatted record in; when it does not fit, the
oldest records are dropped (their items counted in ``dropped``) and their epochs widen the
``gap`` - the range an output re-sends from the SD card, the source of truth, once the server is
back. Senders read the oldest record as at most two memoryview slices (it may wrap) or copy
whole records into a body buffer, and ``pop`` only what the server took.
"""

from array import array

from ..protocol.reading import APPARENT_POWER, DERIVED_PF, Reading
from ..timeutil import Backoff, ticks_diff

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_RECORDS = const(64)


class ByteRing:
    """Drop-oldest FIFO of byte records with a gap of dropped epochs.

    :param capacity: bytes of the ring
    :param max_records: records indexed at most (each costs 8 bytes of index)
    :ivar queued: items (lines, points) in the ring  :ivar dropped: items dropped when full
    """

    def __init__(self, capacity, max_records=_MAX_RECORDS):
        self.capacity = capacity
        self._buf = bytearray(capacity)
        self._mv = memoryview(self._buf)
        self._head = 0  # byte offset of the oldest record
        self.used = 0  # bytes held
        self._max = max_records
        zeros = memoryview(bytes(max_records))  # one byte per element, no temporary list
        self._epoch = array("l", zeros)
        self._len = array("H", zeros)
        self._items = array("H", zeros)
        self._first = 0  # index slot of the oldest record
        self.count = 0  # records held
        self.queued = 0
        self.dropped = 0
        self.gap_from = None  # epochs [gap_from, gap_until) were dropped: re-send from the CSV
        self.gap_until = None

    # -- writing -----------------------------------------------------------------------------
    def push(self, src, n, epoch, items):
        """Append ``src[:n]`` as one record of ``items`` items at ``epoch`` (drop-oldest)."""
        if not n:
            return
        cap = self.capacity
        if n > cap:
            self.dropped += items
            self.mark_gap(epoch)
            return
        while self.count and (self.used + n > cap or self.count >= self._max):
            self.mark_gap(self._epoch[self._first])
            self.dropped += self._items[self._first]
            self.pop()
        start = (self._head + self.used) % cap
        first = min(n, cap - start)
        self._mv[start : start + first] = src[0:first]
        if first < n:
            self._mv[0 : n - first] = src[first:n]
        self.used += n
        i = (self._first + self.count) % self._max
        self._epoch[i] = epoch
        self._len[i] = n
        self._items[i] = items
        self.count += 1
        self.queued += items

    def mark_gap(self, epoch):
        """Widen the gap to include ``epoch`` (its record is lost from memory)."""
        if self.gap_from is None or epoch < self.gap_from:
            self.gap_from = epoch
        if self.gap_until is None or epoch + 1 > self.gap_until:
            self.gap_until = epoch + 1

    def clear_gap(self):
        self.gap_from = self.gap_until = None

    # -- reading -----------------------------------------------------------------------------
    def oldest(self):
        """The oldest record as ``(part, rest, items)``: ``rest`` is empty unless it wraps."""
        start = self._head
        end = start + self._len[self._first]
        cap = self.capacity
        items = self._items[self._first]
        if end <= cap:
            return self._mv[start:end], self._mv[0:0], items
        return self._mv[start:cap], self._mv[0 : end - cap], items

    def copy_out(self, dst, limit):
        """Copy whole records, oldest first, into ``dst`` up to ``limit`` bytes (at least one
        record if it fits ``dst``); nothing is removed.

        :returns: (bytes copied, records, items)
        """
        pos = records = items = 0
        i = self._first
        start = self._head
        cap = self.capacity
        while records < self.count:
            n = self._len[i]
            if pos + n > len(dst) or (records and pos + n > limit):
                break
            first = min(n, cap - start)
            dst[pos : pos + first] = self._mv[start : start + first]
            if first < n:
                dst[pos + first : pos + n] = self._mv[0 : n - first]
            pos += n
            records += 1
            items += self._items[i]
            start = (start + n) % cap
            i = (i + 1) % self._max
        return pos, records, items

    def pop(self, records=1):
        """Remove the ``records`` oldest records."""
        for _ in range(min(records, self.count)):
            i = self._first
            self._head = (self._head + self._len[i]) % self.capacity
            self.used -= self._len[i]
            self.queued -= self._items[i]
            self._first = (i + 1) % self._max
            self.count -= 1
        if not self.count:
            self._head = 0

    # -- the gap -----------------------------------------------------------------------------
    def refill(self, rows, max_rows, emit):
        """Pass the CSV rows that fall into the gap to ``emit(epoch, values, extras)``.

        ``rows`` is what the backfill read for ``[gap_from, gap_until)``, at most ``max_rows``.
        Nothing changes here: after the server took them, ``commit(next_from)`` moves the gap
        on (servers overwrite a point with the same timestamp, so a retry re-sends safely).

        :returns: the epoch the gap continues from, or None when it is closed by these rows
        """
        since, until = self.gap_from, self.gap_until
        if since is None or until is None:
            return None
        count = 0
        done = since  # every row before this epoch is covered
        for row in rows:
            count += 1
            epoch = int(row[0])
            if epoch < done or epoch >= until:
                continue
            emit(epoch, row[1], row[2] if len(row) > 2 else row[1])
            done = epoch + 1
        if count < max_rows or done >= until or done == since:
            return None
        return done

    def commit(self, next_from):
        """The server has the rows ``refill`` emitted: the gap now starts at ``next_from``."""
        if next_from is None:
            self.clear_gap()
        else:
            self.gap_from = next_from


_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60_000)


class BatchSink:
    """Ring, status, interval filter, backoff and backfill of one batching output.

    :ivar sent: points the server took  :ivar failed: failed pushes
    :ivar backfilled: points re-sent from the CSV  :ivar backfill_errors: CSV reads that failed
    """

    def __init__(self, name, problems, state, clock, backfill, queue_bytes):
        self.state = state
        self.status = state.add_sink(name, problems)
        self._ticks_ms = clock.ticks_ms  # the app's clock: schedule and the poll budget
        self._backfill = backfill
        self.ring = ByteRing(queue_bytes)
        self._backoff = Backoff(_BACKOFF_MIN_MS, _BACKOFF_MAX_MS)
        self.sent = 0
        self.failed = 0
        self.backfilled = 0
        self.backfill_errors = 0
        self.last_send_ms = None
        self._bucket = None  # interval bucket of the last live telegram
        self._bf_bucket = None  # ... and of the last backfilled row
        self.enabled = False  # set by the subclass from its settings
        self.interval_s = 0
        self.batch_ms = 0

    def _start(self, enabled, interval_s, batch_ms):
        self.enabled = enabled
        self.interval_s = interval_s or 0
        self.batch_ms = self.interval_s * 1000 if self.interval_s else batch_ms
        self.status.state = "pending" if enabled else "disabled"

    @property
    def queued(self):
        """Points waiting in memory."""
        return self.ring.queued

    @property
    def dropped(self):
        """Points dropped from the full queue (re-sent from the CSV when a backfill is set)."""
        return self.ring.dropped

    def _due_bucket(self, epoch, attr="_bucket"):
        """Interval filter: the first telegram of each ``interval_s`` bucket passes."""
        if not self.interval_s:
            return True
        bucket = epoch // self.interval_s
        if bucket == getattr(self, attr):
            return False
        setattr(self, attr, bucket)
        return True

    def _accept(self, epoch_utc):
        """The telegram's epoch when it is to be queued (enabled, clock set, its interval
        bucket's first), else None."""
        if not self.enabled or epoch_utc is None:
            return None
        epoch = int(epoch_utc)
        return epoch if self._due_bucket(epoch) else None

    def _gap_pending(self):
        return self._backfill is not None and self.ring.gap_from is not None

    def _poll_due(self, now_ms):
        """True when ``poll`` has something to send and the backoff allows it."""
        if not self.enabled or not self._backoff.due(now_ms):
            return False
        return bool(self.ring.count) or self._gap_pending()

    def _backfill_rows(self, max_rows):
        """CSV rows of the gap, or None after a read error (the gap is given up: retrying
        every pass would hammer a failing card; an SD fault is not a network failure)."""
        ring = self.ring
        try:
            return self._backfill(ring.gap_from, ring.gap_until, max_rows)
        except Exception as exc:  # noqa: BLE001 - whatever the card raises
            self.backfill_errors += 1
            ring.clear_gap()
            self.status.error = ("backfill: %s" % (str(exc) or type(exc).__name__))[:60]
            return None

    def _backfill_done(self, next_from):
        """The server took the slice ``ring.refill`` emitted."""
        self.ring.commit(next_from)
        if self.ring.gap_from is None:
            self._bf_bucket = None

    @staticmethod
    def _csv_derived(values):
        """The derived values of a CSV row (computed when the row has none)."""
        if DERIVED_PF in values or APPARENT_POWER in values:
            return values
        r = Reading()
        r.values = values
        return r.derive()

    def _succeeded(self, now_ms, t0):
        self.last_send_ms = ticks_diff(self._ticks_ms(), t0)
        self._backoff.ok()
        more = bool(self.ring.count) or self._gap_pending()
        self._backoff.wait(now_ms, 0 if more else self.batch_ms)
        self.status.state = "ok"
        self.status.error = ""
        self._sync()

    def _fail(self, now_ms, state, text):
        self.failed += 1
        self._backoff.fail(now_ms)
        self.status.state = state
        self.status.error = text[:60]
        self._sync()

    def _sync(self):
        status = self.status
        status.sent = self.sent
        status.failed = self.failed
        status.queued = self.ring.queued
        status.dropped = self.ring.dropped
