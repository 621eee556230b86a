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
  checked: a last line without LF, or invalid complete lines (NUL garbage, wrong field count),
  are cut off with ``truncate`` where the platform has it, else overwritten in place with spaces
  (lines of at most 80 bytes), which every reader, ours and Excel, sees as empty lines;
- a file whose header itself is torn holds no rows and is removed and started again.
So a file always parses; a power cut loses at most the row being written.

Time: the meter's local time and offset stamp a row (without an offset, the offset is taken
from ``epoch_utc`` or the EU DST rule); without a meter time the row is stamped from
``epoch_utc`` if the clock is set (>= 2020), otherwise it is not written (``no_time``).
Timestamps (as UTC) never go backwards within a file: a row older than the last row of its
day's file (the meter clock was corrected back) starts the next part file of that date. Across
DST the local time repeats, but the UTC offset column keeps every row unambiguous.
"""

from .reading import (
    A_MINUS,
    A_PLUS,
    APPARENT_POWER,
    CURRENTS,
    DERIVED_PF,
    I_L1,
    I_L2,
    I_L3,
    P_MINUS,
    P_PLUS,
    POWER_FACTOR,
    Q_MINUS,
    Q_PLUS,
    R_MINUS,
    R_PLUS,
    U_L1,
    U_L2,
    U_L3,
    VOLTAGES,
)
from .storage import ENOENT, errno_of, part_of
from .timeutil import civil_from_days, days_from_civil, eu_offset

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MIN_YEAR = const(2020)
_MIN_EPOCH = const(1577836800)  # 2020-01-01T00:00:00Z: an RTC before this is not set
_HEAD_MAX = const(1024)
_LINE_MAX = const(512)
_CHUNK = const(512)
_BACK_LINES = const(8)
_MAX_PARTS = const(99)
_RETENTION_EVERY = const(360)  # rows between retention checks (30 min at 5 s)
_GONE = "gone"

# key, header label, format. Energies are integer Wh/varh, powers whole W/var.
_METER_COLUMNS = (
    (A_PLUS, "A+ Wh", "%d"),
    (A_MINUS, "A- Wh", "%d"),
    (R_PLUS, "R+ varh", "%d"),
    (R_MINUS, "R- varh", "%d"),
    (P_PLUS, "P+ W", "%.0f"),
    (P_MINUS, "P- W", "%.0f"),
    (Q_PLUS, "Q+ var", "%.0f"),
    (Q_MINUS, "Q- var", "%.0f"),
    (U_L1, "U1 V", "%.1f"),
    (U_L2, "U2 V", "%.1f"),
    (U_L3, "U3 V", "%.1f"),
    (I_L1, "I1 A", "%.2f"),
    (I_L2, "I2 A", "%.2f"),
    (I_L3, "I3 A", "%.2f"),
    (POWER_FACTOR, "PF", "%.3f"),
)
_KNOWN = {c[0] for c in _METER_COLUMNS}
_PF_DERIVED = (DERIVED_PF, "%.3f", 1)
_S_DERIVED = (APPARENT_POWER, "%.0f", 1)
_EXTRA_SPEC = (("temperature", "%.2f", 2), ("humidity", "%.2f", 2), ("rssi", "%d", 2))
_DIALECTS = {
    # sep, time label, offset label, derived PF label
    "excel-de": (";", "Zeit", "UTC-Offset", "PF berechnet"),
    "international": (",", "Time", "UTC offset", "PF derived"),
}
_LABELS = {c[0]: c[1] for c in _METER_COLUMNS}
_LABELS[APPARENT_POWER] = "S VA"
_LABELS["temperature"] = "T degC"
_LABELS["humidity"] = "RH %"
_LABELS["rssi"] = "RSSI dBm"
_BY_LABEL = {c[1]: (c[0], c[2], 0) for c in _METER_COLUMNS}
_BY_LABEL["S VA"] = _S_DERIVED
_BY_LABEL["PF berechnet"] = _PF_DERIVED
_BY_LABEL["PF derived"] = _PF_DERIVED
for _e in _EXTRA_SPEC:
    _BY_LABEL[_LABELS[_e[0]]] = _e
_TIME_LABELS = ("Zeit", "Time")


def _naive(t):
    return days_from_civil(t[0], t[1], t[2]) * 86400 + t[3] * 3600 + t[4] * 60 + t[5]


def _valid_time(t):
    try:
        y, mo, d, h, mi, s = t
    except (TypeError, ValueError):
        return False
    return (
        _MIN_YEAR <= y < 2100
        and 0 < mo < 13
        and 0 < d < 32
        and 0 <= h < 24
        and (0 <= mi < 60 and 0 <= s < 60)
    )


def _parse_time(text, off_text):
    # "31.03.2024 02:00:00" or "2024-03-31 02:00:00", "+01:00" -> UTC epoch (ValueError if bad)
    if len(text) != 19 or len(off_text) != 6 or off_text[0] not in "+-":
        raise ValueError
    if text[2] == ".":
        t = (int(text[6:10]), int(text[3:5]), int(text[0:2]))
    else:
        t = (int(text[0:4]), int(text[5:7]), int(text[8:10]))
    t += (int(text[11:13]), int(text[14:16]), int(text[17:19]))
    if not _valid_time(t):
        raise ValueError
    off = int(off_text[1:3]) * 60 + int(off_text[4:6])
    return _naive(t) - (off if off_text[0] == "+" else -off) * 60


# -- header and line parsing (shared by the tail check and read_rows) -------------------------
def _parse_header(line):
    """``(spec, sep)`` of one of our header lines (bytes without LF), or None."""
    try:
        text = bytes(line).decode().strip()
    except UnicodeError:
        return None
    sep = ";" if ";" in text else ","
    labels = text.split(sep)
    if len(labels) < 2 or labels[0] not in _TIME_LABELS:
        return None
    spec = []
    for label in labels[2:]:
        col = _BY_LABEL.get(label)
        if col is None:
            if ":" not in label:
                return None
            col = (label, None, 0)
        spec.append(col)
    return spec, sep


def _parse_line(body, spec, sep):
    """``(epoch, values)`` of one stripped data line (bytes), or None if it is not valid."""
    try:
        fields = bytes(body).decode().split(sep)
        if len(fields) != len(spec) + 2:
            return None
        epoch = _parse_time(fields[0], fields[1])
        values = {}
        i = 2
        for key, fmt, _src in spec:
            f = fields[i].strip()
            i += 1
            if not f:
                continue
            if sep == ";":
                f = f.replace(",", ".")
            if fmt in ("%d", "%.0f") or (fmt is None and "." not in f):
                values[key] = int(f)
            else:
                values[key] = float(f)
        return epoch, values
    except (ValueError, UnicodeError, IndexError):
        return None


def _rfind_nl(f, lo, hi):
    # position of the last LF in [lo, hi), reading backwards in small slices; -1 if none
    pos = hi
    while pos > lo:
        start = pos - _CHUNK if pos - _CHUNK > lo else lo
        f.seek(start)
        i = f.read(pos - start).rfind(b"\n")
        if i >= 0:
            return start + i
        pos = start
    return -1


def _write_all(f, data):
    mv = memoryview(data)
    off = 0
    n = len(data)
    while off < n:
        k = f.write(mv[off:])
        if not k:
            raise OSError(28, "short write")  # ENOSPC: nothing more fits
        off += k


def read_rows(source, path, start_offset=0, with_offset=False):
    """Iterate over the rows of one of our CSV files (either dialect), in bounded memory.

    :param source: a :class:`~smartmeter.storage.Storage` (then ``path`` may be a bare file name)
        or an ``fs`` object
    :param start_offset: byte offset to resume from (a value from ``with_offset``)
    :param with_offset: also yield the offset just past each row
    :returns: iterator of ``(epoch_utc, values)`` (or ``(epoch_utc, values, next_offset)``);
        ``values`` maps OBIS codes, ``"power_factor"``, ``"apparent_power"``, ``"temperature"``,
        ``"humidity"``, ``"rssi"`` to numbers (A+ includes the energy offset it was written with).
        Blank, invalid and unterminated lines are skipped.
    """
    fs = getattr(source, "fs", source)
    if "/" not in path and hasattr(source, "path"):
        path = source.path(path)
    f = fs.open(path, "rb")
    try:
        head = f.read(_HEAD_MAX)
        nl = head.find(b"\n")
        parsed = _parse_header(head[:nl]) if nl >= 0 else None
        if parsed is None:
            return
        spec, sep = parsed
        pos = start_offset if start_offset > nl + 1 else nl + 1
        f.seek(pos)
        carry = b""
        skip = False  # inside an overlong line
        while True:
            chunk = f.read(_CHUNK * 2)
            if not chunk:
                return
            buf = carry + chunk if carry else chunk
            base = pos - len(carry)
            start = 0
            while True:
                i = buf.find(b"\n", start)
                if i < 0:
                    break
                if skip:
                    skip = False
                elif i - start <= _LINE_MAX:
                    row = _parse_line(buf[start:i].strip(), spec, sep)
                    if row is not None:
                        yield (row[0], row[1], base + i + 1) if with_offset else row
                start = i + 1
            carry = buf[start:]
            pos += len(chunk)
            if len(carry) > _LINE_MAX:
                carry = b""
                skip = True
    finally:
        f.close()


class CsvLog:
    """Writes one CSV row per reading into day files through a :class:`Storage`.

    :param storage: the :class:`~smartmeter.storage.Storage` of the SD card
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
        self._sep, self._tlabel, self._olabel, self._pflabel = _DIALECTS[dialect]
        self._comma = dialect == "excel-de"
        self.energy_offset_wh = int(energy_offset_wh)
        self._std = std_offset_min
        self._eu = eu_dst
        self.rows = 0  # rows written and synced
        self.errors = 0  # failed writes
        self.lost = 0  # rows not written (SD paused or write failed)
        self.no_time = 0  # rows dropped because their time is unknown
        self.repairs = 0  # files whose tail was cut back
        self.new_parts = 0  # extra part files started (meter change, clock back)
        self.last_error = ""
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
            st.retention()
        except OSError as exc:
            self._fault(exc)
        return n

    def list_days(self):
        """``[(name, size), ...]`` newest first."""
        return self.storage.list_days()

    def write(self, reading, epoch_utc=None, extras=None):
        """Append the row for ``reading``; returns True when it was written and synced.

        :param reading: a :class:`~smartmeter.reading.Reading`
        :param epoch_utc: UTC seconds of the reading from a set clock, or None
        :param extras: dict with ``temperature``, ``humidity``, ``rssi`` (None = empty field)
        Never raises: failures are counted (``errors``, ``lost``, ``no_time``) and shown
        through the storage state.
        """
        try:
            return self._write(reading, epoch_utc, extras)
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
        state.sd_state = st.state
        state.sd_free = st.free_bytes
        state.sd_total = st.total_bytes
        c = state.counters
        c.csv_rows = self.rows
        c.csv_errors = self.errors
        c.csv_lost = self.lost
        c.sd_remounts = st.remounts

    # -- time ------------------------------------------------------------------------------
    def _stamp(self, reading, epoch_utc):
        # -> (local tuple, offset minutes, utc epoch) or None
        t = reading.meter_time
        ok_clock = epoch_utc is not None and epoch_utc >= _MIN_EPOCH
        if t is not None and _valid_time(t):
            naive = _naive(t)
            off = reading.utc_offset
            if off is None and ok_clock:
                off = (naive - int(epoch_utc) + 450) // 900 * 15
                if off > 900 or off < -900:
                    off = None
            if off is None:
                off = self._std
                if self._eu and eu_offset(naive - off * 60, self._std) != off:
                    off += 60
            return t, off, naive - off * 60
        if not ok_clock:
            return None
        epoch = int(epoch_utc)
        off = eu_offset(epoch, self._std) if self._eu else self._std
        local = epoch + off * 60
        days = local // 86400
        sec = local - days * 86400
        ymd = civil_from_days(days)
        return (ymd[0], ymd[1], ymd[2], sec // 3600, sec // 60 % 60, sec % 60), off, epoch

    # -- writing ---------------------------------------------------------------------------
    def _write(self, reading, epoch_utc, extras):
        st = self.storage
        stamp = self._stamp(reading, epoch_utc)
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
        except OSError:
            self._dirty = self.path
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
        parts = []
        for key, fmt, src in self._spec:
            if src == 0:
                v = values.get(key)
                if v is not None and key == A_PLUS:
                    v += self.energy_offset_wh
            elif src == 1:
                v = derived.get(key)
            else:
                v = extras.get(key) if extras else None
            if v is None:
                parts.append("")
                continue
            try:
                if v - v != 0:  # NaN or infinity: never write a non-numeric field
                    parts.append("")
                elif fmt is None:
                    parts.append(("%d" if isinstance(v, int) else "%.3f") % v)
                else:
                    parts.append(fmt % v)
            except (TypeError, ValueError, OverflowError):
                parts.append("")
        sep = self._sep
        body = sep.join(parts)
        if self._comma:
            body = body.replace(".", ",")
            when = "%02d.%02d.%04d %02d:%02d:%02d" % (t[2], t[1], t[0], t[3], t[4], t[5])
        else:
            when = "%04d-%02d-%02d %02d:%02d:%02d" % t
        a = off if off >= 0 else -off
        zone = "%s%02d:%02d" % ("+" if off >= 0 else "-", a // 60, a % 60)
        return (when + sep + zone + sep + body + "\r\n").encode()

    def _covers(self, values, colset=None):
        colset = self._colset if colset is None else colset
        for key in values:
            if key not in colset:
                v = values[key]
                if isinstance(v, (int, float)):
                    return False
        return True

    def _make_spec(self, values):
        spec = [(key, fmt, 0) for key, _label, fmt in _METER_COLUMNS if _num(values.get(key))]
        extra = [k for k in values if k not in _KNOWN and _num(values[k])]
        extra.sort()
        spec.extend((k, None, 0) for k in extra)
        ui = False
        for u, i in zip(VOLTAGES, CURRENTS):
            if u in values and i in values:
                ui = True
        if ui and P_PLUS in values:
            spec.append(_PF_DERIVED)
        if ui:
            spec.append(_S_DERIVED)
        spec.extend(_EXTRA_SPEC)
        return spec

    def _header(self, spec):
        labels = [self._tlabel, self._olabel]
        for key, _fmt, _src in spec:
            labels.append(self._pflabel if key == DERIVED_PF else _LABELS.get(key, key))
        return (self._sep.join(labels) + "\r\n").encode()

    def _open_for(self, date, reading, epoch):
        st = self.storage
        fs = st.fs
        names = [n for n in st.log_files() if n.startswith(date)]
        part = part_of(names[-1]) if names else 0
        spec = None
        if part:
            path = st.path(_name(date, part))
            info = self._inspect(path)
            if info is _GONE:
                pass  # torn header removed: start this part again
            elif (
                info is not None
                and info[1] == self._sep
                and self._covers(reading.values, {c[0] for c in info[0]})
            ):
                if info[2] is None or epoch >= info[2] or part >= _MAX_PARTS:
                    spec = info[0]
                else:
                    part += 1
            else:
                part += 1
        else:
            part = 1
        if part > _MAX_PARTS:
            self.last_error = "too many part files for " + date
            return False
        path = st.path(_name(date, part))
        f = fs.open(path, "ab")
        if spec is None:
            spec = self._make_spec(reading.values)
            if part > 1:
                self.new_parts += 1
            try:
                _write_all(f, self._header(spec))
                f.flush()
                fs.sync(f)
            except OSError:
                self._dirty = path
                _close(f)
                raise
        self._last_epoch = epoch
        self._f = f
        self.path = path
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
            head = f.read(_HEAD_MAX)
            nl = head.find(b"\n")
            if nl < 0:
                if size < _HEAD_MAX:
                    _close(f)
                    fs.remove(path)
                    self.repairs += 1
                    return _GONE
                return None
            parsed = _parse_header(head[:nl])
            if parsed is None:
                return None
            spec, sep = parsed
            good_end, last_epoch, last_line = self._scan_tail(f, nl + 1, size, spec, sep)
        finally:
            _close(f)
        if good_end < size:
            self._cut(path, good_end, size)
        failed = self._failed
        if failed is not None and failed[0] == path:
            self._failed = None
            if last_line is not None and last_line == failed[1]:
                self.lost -= 1  # the failed write had landed completely after all
                self.rows += 1
        return spec, sep, last_epoch

    def _scan_tail(self, f, hdr_end, size, spec, sep):
        nl = _rfind_nl(f, hdr_end, size)
        if nl < 0:
            return hdr_end, None, None
        good_end = end = nl + 1
        for _ in range(_BACK_LINES):
            if end <= hdr_end:
                break
            p = _rfind_nl(f, hdr_end, end - 1)
            start = p + 1 if p >= 0 else hdr_end
            if end - start <= _LINE_MAX:
                f.seek(start)
                line = f.read(end - start)
                body = line.strip()
                if not body:
                    end = start
                    continue
                row = _parse_line(body, spec, sep)
                if row is not None:
                    return good_end, row[0], line
            good_end = end = start
        return good_end, None, None

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


def _num(v):
    return v is not None and isinstance(v, (int, float)) and not isinstance(v, bool)


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
        from .storage import Storage

        self.storage = Storage(hw.fs, hw.mount, cfg.LOG_DIR, hw.clock, cfg.LOG_MIN_FREE_MB)
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
