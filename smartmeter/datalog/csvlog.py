# SPDX-License-Identifier: MIT
"""CSV day files: one row per telegram, written whole or not at all.

Files are ``LOG_DIR/YYYY-MM-DD.csv``, named by the *local meter date* of the rows. The first row
of a file fixes its columns: time, UTC offset, then only the values this meter sends (fixed order
A+ A- R+ R- P+ P- Q+ Q- U1-3 I1-3 PF, unknown numeric OBIS codes after them), the derived PF and
S when the meter sends U/I (and P+), then T, RH and RSSI (always; empty when unknown). A row with
a value the file has no column for (another meter) goes to ``YYYY-MM-DD-2.csv`` and so on.

Dialects: ``"excel-de"`` (``;``, decimal comma, ``DD.MM.YYYY hh:mm:ss``: a double-click opens it
right in an Austrian/German Excel, like the original firmware) and ``"international"`` (``,``,
``.``, ISO ``YYYY-MM-DD hh:mm:ss``). Both end lines with CRLF and are pure ASCII, so no BOM is
needed (Excel reads ASCII the same in every code page) and nothing depends on the encoding.

Power safety (FAT is not power-fail safe; CircuitPython has no ``truncate``):

- each row is one ``write()`` of the complete line, then ``flush()`` and ``fs.sync()``;
- before a file is appended to (at start, after a remount, after a failed write) its tail is
  checked: a last line without LF (what a torn write of ours leaves: a row ends with its LF) and
  lines of NUL bytes (FAT grew the file before its data arrived) are cut off with ``truncate``
  where the platform has it, else overwritten in place with spaces (lines of at most 80 bytes),
  which every reader, ours and Excel, sees as empty lines. A complete line is never cut: a file
  whose last complete line is not a row of ours (edited in a spreadsheet) is left as it is,
  named in ``notice`` (the status's last csv error) and never appended to; rows of that date go
  to the next part. Times without seconds (as a spreadsheet saves them) are read as ``:00``;
- a file whose header itself is torn holds no rows and is removed and started again.
So a file of ours always parses; a power cut loses at most the row being written.

Time: the meter's local time and offset stamp a row (without an offset, the offset is taken
from ``epoch_utc`` or the EU DST rule); without a meter time the row is stamped from
``epoch_utc`` if the clock is set (>= 2020), otherwise it is not written (``no_time``). A row
whose meter clock the app found wrong (``extras["meter_clock"]``, see ``app._row_time``) is
stamped from ``epoch_utc`` (the board's clock, flag 1) or, without one, from the meter's own
time (flag 2, years from 2000 on); the flag goes into the "Meter clock wrong" column, which a
file gets when its first row is flagged (a flagged row for a file without it starts the next
part file, like a value the file has no column for).
Timestamps (as UTC) never go backwards within a file: a row older than the last row of its
day's file (the meter clock was corrected back) starts the next part file of that date. Across
DST the local time repeats, but the UTC offset column keeps every row unambiguous.
"""

from ..oserrors import errno_of
from ..protocol.reading import CLOCK_FLAG
from ..timeutil import civil_from_days, fields_from_epoch
from .csvformat import (
    _DIALECTS,
    HEAD_MAX,
    _format_row,
    _header,
    _make_spec,
    _parse_header,
    _scan_tail,
    _stamp,
    _write_all,
    read_rows,
)
from .sd import ENOENT, part_of

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_PARTS = const(999)  # is_log_name's limit; a foreign file's number is skipped, not reused
_RETENTION_EVERY = const(360)  # rows between retention checks (30 min at 5 s)
_GONE = "gone"


class CsvLog:
    """Writes one CSV row per reading into day files through a :class:`Storage`.

    :param storage: the :class:`~smartmeter.datalog.sd.Storage` of the SD card
    :param dialect: ``"excel-de"`` or ``"international"``
    :param energy_offset_wh: added to A+ (carries the count across a meter exchange)
    :param std_offset_min: standard-time UTC offset of the meter's zone (CET: 60)
    :param eu_dst: apply EU summer time when the offset must be inferred
    """

    def __init__(
        self, storage, dialect="excel-de", energy_offset_wh=0, std_offset_min=60, eu_dst=True
    ):
        if dialect not in _DIALECTS:
            raise ValueError("CSV dialect must be excel-de or international")
        self.storage = storage
        self.dialect = dialect
        self._sep = _DIALECTS[dialect][0]
        self._comma = dialect == "excel-de"
        self.energy_offset_wh = int(energy_offset_wh)
        self._std = std_offset_min
        self._eu = eu_dst
        self.rows = 0  # rows written and synced
        self.errors = 0  # failed writes
        self.lost = 0  # rows not written (SD paused or write failed)
        self.no_time = 0  # rows dropped because their time is unknown
        self._flag = None  # the clock flag of the row being written (protocol.reading)
        self.repairs = 0  # files whose tail was cut back
        self.new_parts = 0  # extra part files started (meter change, clock back)
        self.last_error = ""
        self.blocked = None  # why rows cannot be written although the card is fine (shown as error)
        self.notice = ""  # a day file left as it is because its rows cannot be read (last one)
        self.path = None  # file being written
        self._f = None
        self._date = None
        self._newest = ""
        self._spec = None
        self._colset = None
        self._last_epoch = None
        self._gen = -1
        self._dirty = None  # path of a file whose last write failed
        self._failed = None  # (path, row bytes) of that write
        self._since_retention = 0

    # -- public ----------------------------------------------------------------------------
    def start(self, check_files=3):
        """Mount (first attempt) and repair the tails of the newest ``check_files`` files."""
        st = self.storage
        if st.state == "disabled":
            return 0
        if not st.mounts and not st.begin():
            return 0
        n = 0
        try:
            names = st.log_files()
            for name in names[-check_files:] if check_files else ():
                if self._inspect(st.path(name)) is not None:
                    n += 1
            st.protect = self._today()  # retention at boot never deletes today's file
            st.retention()
        except OSError as exc:
            self._fault(exc)
        return n

    def _today(self):
        """Dates that may be "today" by the clock (every time zone: -14 h .. +14 h), or ()."""
        clock = getattr(self.storage, "_clock", None)
        now = None
        try:
            now = clock.time() if clock is not None and hasattr(clock, "time") else None
        except Exception:  # noqa: BLE001 - a clock that cannot tell: the newest file is kept
            now = None
        if now is None:
            return ()
        out = []
        for delta in (-50400, 0, 50400):
            t = civil_from_days((now + delta) // 86400)
            out.append("%04d-%02d-%02d" % (t[0], t[1], t[2]))
        return tuple(out)

    def write(self, reading, epoch_utc=None, extras=None):
        """Append the row for ``reading``; returns True when it was written and synced.

        :param reading: a :class:`~smartmeter.protocol.reading.Reading`
        :param epoch_utc: UTC seconds of the reading from a set clock, or None
        :param extras: dict with ``temperature``, ``humidity``, ``rssi`` (None = empty field)
        Never raises but MemoryError: failures are counted (``errors``, ``lost``, ``no_time``)
        and shown through the storage state.
        """
        try:
            return self._write(reading, epoch_utc, extras)
        except MemoryError:
            # not a bug of this row: the heap ran out. The app must hear of it (it sheds parts
            # and says "CSV logging off" when rows stop), so it is counted and passed on.
            self.lost += 1
            raise
        except OSError as exc:
            self.lost += 1
            self.errors += 1
            self._fault(exc)
            self._repair_now()
        except Exception as exc:  # a bug must not stop the meter loop: count and keep going
            self._drop()
            self.lost += 1
            self.errors += 1
            self.last_error = "%s: %s" % (type(exc).__name__, exc)
        return False

    def publish(self, state):
        """Copy storage state and counters into the app's :class:`~smartmeter.state.State`."""
        st = self.storage
        state.sd_state = "error" if self.blocked and st.state == "ok" else st.state
        if self.blocked:
            state.last_errors["csv"] = self.blocked
        elif self.notice:
            state.last_errors["csv"] = self.notice
        state.sd_free = st.free_bytes
        state.sd_total = st.total_bytes
        state.uploads_deleted = st.uploads_deleted
        state.upload_deleted = st.upload_deleted
        c = state.counters
        c.csv_rows = self.rows
        c.csv_errors = self.errors
        c.csv_lost = self.lost
        c.csv_no_time = self.no_time
        c.sd_remounts = st.remounts

    # -- writing ---------------------------------------------------------------------------
    def _write(self, reading, epoch_utc, extras):
        st = self.storage
        flag = extras.get(CLOCK_FLAG) if extras else None
        self._flag = flag
        stamp = _stamp(reading, epoch_utc, self._std, self._eu, flag)
        if stamp is None:
            self.no_time += 1
            return False
        if st.state == "disabled":
            return False
        if not st.available():
            self.lost += 1
            return False
        t, off, epoch = stamp
        date = "%04d-%02d-%02d" % (t[0], t[1], t[2])
        if date > self._newest:
            self._newest = date
        st.protect = (date, self._newest)
        if self._dirty is not None:  # a write failed there: repair it now, whatever comes next
            dirty, self._dirty = self._dirty, None
            try:
                st.fs.stat(dirty)
            except OSError as exc:
                if errno_of(exc) != ENOENT:
                    raise
                dirty = None
            if dirty is not None:
                self._inspect(dirty)
        values = reading.values
        if (
            self._f is None
            or self._gen != st.generation
            or self._date != date
            or epoch < self._last_epoch
            or not self._covers(values)
        ):
            self._drop()
            if not self._open_for(date, reading, epoch):
                self.lost += 1
                return False
        derived = reading.derived
        if not derived:
            derived = reading.derive()
        data = self._format(t, off, values, derived, extras)
        try:
            _write_all(self._f, data)
            self._f.flush()
            st.fs.sync(self._f)
        except (OSError, MemoryError):
            self._dirty = self.path  # part of the row may have landed: repair before the next
            self._failed = (self.path, data)
            raise
        self.rows += 1
        self._last_epoch = epoch
        self._since_retention += 1
        if self._since_retention >= _RETENTION_EVERY:
            self._since_retention = 0
            st.retention()
        return True

    def _format(self, t, off, values, derived, extras):
        return _format_row(
            self._spec,
            self._sep,
            self._comma,
            t,
            off,
            values,
            derived,
            extras,
            self.energy_offset_wh,
        )

    def _covers(self, values, colset=None):
        colset = self._colset if colset is None else colset
        if self._flag and CLOCK_FLAG not in colset:
            return False  # a row whose meter clock is wrong needs the flag column
        for key in values:
            if key not in colset:
                v = values[key]
                if isinstance(v, (int, float)):
                    return False
        return True

    def _open_for(self, date, reading, epoch):
        st = self.storage
        fs = st.fs
        names = [n for n in st.log_files() if n.startswith(date)]
        spec = None
        part = 1
        if names:
            # The newest file of ours that takes this row: append to it; else start the number
            # after the newest file of ours. A foreign file (not our header, e.g. copied there)
            # or one whose rows we cannot read is skipped, never written to.
            taken = [part_of(n) for n in names]
            newest = 0
            for name in reversed(names):
                info = self._inspect(st.path(name))
                if info is None:
                    continue
                k = part_of(name)
                if info is _GONE:
                    taken.remove(k)  # torn header removed: this number is free again
                    continue
                if not newest:
                    newest = k
                if (
                    info[1] == self._sep
                    and self._covers(reading.values, {c[0] for c in info[0]})
                    and (info[2] is None or epoch >= info[2])
                ):
                    spec = info[0]
                    part = k
                    break
            if spec is None:
                part = _free_part(taken, newest)
        if part > _MAX_PARTS:
            # Every number is taken (999 files of one date). Rows are counted as lost and the
            # status shows an SD error.
            self.last_error = "too many part files for " + date
            self.blocked = self.last_error
            return False
        self.blocked = None
        path = st.path(_name(date, part))
        f = fs.open(path, "ab")
        if spec is None:
            spec = _make_spec(reading.values, self._flag)
            if part > 1:
                self.new_parts += 1
            try:
                _write_all(f, _header(spec, self.dialect))
                f.flush()
                fs.sync(f)
            except OSError:
                self._dirty = path
                _close(f)
                raise
        self._last_epoch = epoch
        self._f = f
        self.path = path
        st.writing = path[path.rfind("/") + 1 :]
        self._date = date
        self._spec = spec
        self._colset = {c[0] for c in spec}
        self._gen = st.generation
        st.retention()
        return True

    # -- repair ----------------------------------------------------------------------------
    def _inspect(self, path):
        """Check and repair one file. Returns ``(spec, sep, last_epoch)``, ``_GONE`` (a torn
        header was removed) or None (not one of our files: never appended to)."""
        fs = self.storage.fs
        size = fs.stat(path)[6]
        f = fs.open(path, "rb")
        try:
            head = f.read(HEAD_MAX)
            nl = head.find(b"\n")
            if nl < 0:
                if size < HEAD_MAX:
                    _close(f)
                    fs.remove(path)
                    self.repairs += 1
                    return _GONE
                return None
            parsed = _parse_header(head[:nl])
            if parsed is None:
                return None
            spec, sep = parsed
            tail = _scan_tail(f, nl + 1, size, spec, sep)
        finally:
            _close(f)
        if tail is None:
            # our header, rows we cannot read (edited elsewhere): left as it is, never appended
            self.notice = "%s: rows not readable, left as it is" % path[path.rfind("/") + 1 :]
            return None
        good_end, last_epoch, last_line = tail
        if good_end < size:
            self._cut(path, good_end, size)
        failed = self._failed
        if failed is not None and failed[0] == path:
            self._failed = None
            if last_line is not None and last_line == failed[1]:
                self.lost -= 1  # the failed write had landed completely after all
                self.rows += 1
        return spec, sep, last_epoch

    def _cut(self, path, good_end, size):
        fs = self.storage.fs
        self.repairs += 1
        trunc = getattr(fs, "truncate", None)
        if trunc is not None and trunc(path, good_end):
            return
        n = size - good_end
        blank = bytearray(b" " * n)  # (MicroPython cannot multiply a bytearray)
        for i in range(79, n, 80):
            blank[i] = 10
        blank[n - 1] = 10
        f = fs.open(path, "r+b")
        try:
            f.seek(good_end)
            _write_all(f, blank)
            f.flush()
            fs.sync(f)
        finally:
            _close(f)

    def _repair_now(self):
        # After a failed write, cut the partial row off at once if the card still answers (on a
        # full card this works: blanking overwrites in place). Otherwise it stays marked dirty
        # and is repaired before the next row.
        dirty = self._dirty
        if dirty is None:
            return
        try:
            self._inspect(dirty)
            self._dirty = None
        except OSError:
            pass

    def _drop(self):
        if self._f is not None:
            _close(self._f)
        self._f = None

    def _fault(self, exc):
        self._drop()
        self.last_error = "%s: %s" % (type(exc).__name__, exc)
        self.storage.fault(exc)


def _free_part(taken, after):
    """The first number after ``after`` that no file of the date has; past ``_MAX_PARTS`` the
    lowest free one (a file named ``<date>-999.csv`` must not stop logging); ``_MAX_PARTS + 1``
    when all are taken."""
    part = after + 1
    while part in taken:
        part += 1
    if part > _MAX_PARTS:
        part = 1
        while part in taken:
            part += 1
    return part


def _name(date, part):
    return date + ".csv" if part == 1 else "%s-%d.csv" % (date, part)


def _close(f):
    try:
        f.close()
    except Exception:  # closing a file on a pulled card fails; the handle is gone either way
        pass


class CsvSink:
    """The CSV log as a loop sink: one row per reading, SD housekeeping in ``poll``."""

    name = "csv"

    def __init__(self, hw, cfg, state):
        from ..configvalues import LEGACY_OVERRIDE, LEGACY_WEB_PASSWORD
        from .sd import Storage

        self.storage = Storage(hw.fs, hw.mount, cfg.LOG_DIR, hw.clock, cfg.LOG_MIN_FREE_MB)
        # settings of an older firmware beside the logs (LOG_DIR = "/sd"): never an "upload"
        self.storage.keep = (LEGACY_OVERRIDE.lower(), LEGACY_WEB_PASSWORD.lower())
        self.log = CsvLog(self.storage, cfg.CSV_DIALECT, cfg.ENERGY_OFFSET_WH)
        self.state = state
        self.log.start()
        self.log.publish(state)

    def on_reading(self, reading, epoch, extras):
        self.log.write(reading, epoch, extras)
        self.log.publish(self.state)

    def poll(self, now_ms):
        self.storage.poll()
        self.log.publish(self.state)


class CsvBackfill:
    """Rows of the day files between two UTC epochs, for an output that missed them (Graphite,
    InfluxDB: ``app.backfill()`` gives each its own).

    Remembers where the last call stopped (file and byte offset), so an outage is re-sent in
    slices without re-reading a whole day file each time.
    """

    def __init__(self, storage):
        self.storage = storage
        self._cursor = None  # (file name, byte offset, epoch of the row before the offset)

    def __call__(self, since, until, max_rows):
        first_day = "%04d-%02d-%02d" % fields_from_epoch(since - 86400)[:3]
        rows = []
        for name in self.storage.log_files():
            if name[:10] < first_day:
                continue
            offset = 0
            cur = self._cursor
            if cur is not None and cur[0] == name and cur[2] < since:
                offset = cur[1]
            for epoch, values, end in read_rows(self.storage, name, offset, True):
                if epoch >= until:
                    break
                if epoch >= since:
                    rows.append((epoch, values))
                    self._cursor = (name, end, epoch)
                    if len(rows) >= max_rows:
                        return rows
        return rows
