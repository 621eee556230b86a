# SPDX-License-Identifier: MIT
"""The CSV row format shared by the writer and the readers: columns, labels, parsing.

The column table, header labels and number formats of both dialects (``"excel-de"``: ``;``,
decimal comma, ``DD.MM.YYYY``; ``"international"``: ``,``, ``.``, ISO dates), the parsers of our
header and data lines, row formatting and time stamping, and :func:`read_rows`. Pure: no state;
:func:`read_rows` works on any ``fs``-like object.
See :mod:`smartmeter.datalog.csvlog` for the file layout and the power-safety rules.
"""

from ..protocol.reading import (
    A_MINUS,
    A_PLUS,
    APPARENT_POWER,
    CLOCK_BOARD,
    CLOCK_FLAG,
    CLOCK_METER_WRONG,
    CURRENTS,
    DERIVED_PF,
    HUMIDITY,
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
    RSSI,
    TEMPERATURE,
    U_L1,
    U_L2,
    U_L3,
    VOLTAGES,
)
from ..timeutil import civil_from_days, days_from_civil, eu_offset

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MIN_YEAR = const(2020)
_MIN_EPOCH = const(1577836800)  # 2020-01-01T00:00:00Z: an RTC before this is not set
_OLD_YEAR = const(2000)  # a meter clock that is wrong (flag 2) may stamp rows from here on
HEAD_MAX = const(1024)  # longest header line (shared with csvlog)
LINE_MAX = const(512)  # longest data line (shared with csvlog)
_CHUNK = const(512)
ROWS_BUF = const(1024)  # read_rows' buffer: the header (HEAD_MAX), then a cut line + 512 more
_BACK_LINES = const(8)

# key, header label, format. Energies are integer Wh/varh, powers whole W/var.
_METER_COLUMNS = (
    (A_PLUS, "A+ Wh", "%d"),
    (A_MINUS, "A- Wh", "%d"),
    (R_PLUS, "R+ varh", "%d"),
    (R_MINUS, "R- varh", "%d"),
    # tariff registers (T210-D-r, AMIS: 3.8.1/4.8.1); files written before carry the OBIS code
    # as label, which still parses (any label with ":" is a value column)
    ("1-0:1.8.1", "A+ T1 Wh", "%d"),
    ("1-0:1.8.2", "A+ T2 Wh", "%d"),
    ("1-0:2.8.1", "A- T1 Wh", "%d"),
    ("1-0:2.8.2", "A- T2 Wh", "%d"),
    ("1-0:3.8.1", "R+ T1 varh", "%d"),
    ("1-0:3.8.2", "R+ T2 varh", "%d"),
    ("1-0:4.8.1", "R- T1 varh", "%d"),
    ("1-0:4.8.2", "R- T2 varh", "%d"),
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
_EXTRA_SPEC = ((TEMPERATURE, "%.2f", 2), (HUMIDITY, "%.2f", 2), (RSSI, "%d", 2))  # = EXTRAS
_FLAG_SPEC = (CLOCK_FLAG, "%d", 2)  # only in files whose first row had a wrong meter clock
_DIALECTS = {
    # sep, time label, offset label, derived PF label
    "excel-de": (";", "Zeit", "UTC-Offset", "PF berechnet"),
    "international": (",", "Time", "UTC offset", "PF derived"),
}
_LABELS = {c[0]: c[1] for c in _METER_COLUMNS}
_LABELS[APPARENT_POWER] = "S VA"
_LABELS[TEMPERATURE] = "T degC"
_LABELS[HUMIDITY] = "RH %"
_LABELS[RSSI] = "RSSI dBm"
_LABELS[CLOCK_FLAG] = "Meter clock wrong"
_BY_LABEL = {c[1]: (c[0], c[2], 0) for c in _METER_COLUMNS}
_BY_LABEL["S VA"] = _S_DERIVED
_BY_LABEL["PF berechnet"] = _PF_DERIVED
_BY_LABEL["PF derived"] = _PF_DERIVED
for _e in _EXTRA_SPEC + (_FLAG_SPEC,):
    _BY_LABEL[_LABELS[_e[0]]] = _e
_TIME_LABELS = ("Zeit", "Time")


def _naive(t):
    return days_from_civil(t[0], t[1], t[2]) * 86400 + t[3] * 3600 + t[4] * 60 + t[5]


def _valid_time(t, first_year=_MIN_YEAR):
    try:
        y, mo, d, h, mi, s = t
    except (TypeError, ValueError):
        return False
    return (
        first_year <= y < 2100
        and 0 < mo < 13
        and 0 < d < 32
        and 0 <= h < 24
        and (0 <= mi < 60 and 0 <= s < 60)
    )


def _parse_time(text, off_text):
    # "31.03.2024 02:00:00" or "2024-03-31 02:00:00", "+01:00" -> UTC epoch (ValueError if bad);
    # also without seconds ("31.03.2024 02:00"), as a spreadsheet saves our files
    n = len(text)
    if n == 16:
        text += ":00"
    elif n != 19:
        raise ValueError
    if len(off_text) != 6 or off_text[0] not in "+-" or text[16] != ":":
        raise ValueError
    if text[2] == ".":
        t = (int(text[6:10]), int(text[3:5]), int(text[0:2]))
    else:
        t = (int(text[0:4]), int(text[5:7]), int(text[8:10]))
    t += (int(text[11:13]), int(text[14:16]), int(text[17:19]))
    if not _valid_time(t, _OLD_YEAR):  # rows of a meter with a wrong clock may be that old
        raise ValueError
    off = int(off_text[1:3]) * 60 + int(off_text[4:6])
    return _naive(t) - (off if off_text[0] == "+" else -off) * 60


# -- header and line parsing (shared by the tail check and read_rows) -------------------------
def _parse_header(line):
    """``(spec, sep)`` of one of our header lines (bytes-like, without LF), or None."""
    try:
        text = str(line, "utf-8").strip()
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
    """``(epoch, values)`` of one data line (bytes-like, without LF), or None if it is not
    valid. Decoded straight from the buffer: the line as text is the only copy of it."""
    try:
        fields = str(body, "utf-8").strip().split(sep)
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


def read_rows(source, path, start_offset=0, with_offset=False, buf=None):
    """Iterate over the rows of one of our CSV files (either dialect), in bounded memory.

    :param source: a :class:`~smartmeter.datalog.sd.Storage` (then ``path`` may be a bare file name)
        or an ``fs`` object
    :param start_offset: byte offset to resume from (a value from ``with_offset``)
    :param with_offset: also yield the offset just past each row
    :param buf: a bytearray of ``ROWS_BUF`` bytes to read into (a caller reading many files in
        turn, the usage replay, keeps one), else one is made for this call
    :returns: iterator of ``(epoch_utc, values)`` (or ``(epoch_utc, values, next_offset)``);
        ``values`` maps OBIS codes, ``"power_factor"``, ``"apparent_power"``, ``"temperature"``,
        ``"humidity"``, ``"rssi"`` to numbers (A+ includes the energy offset it was written with).
        Blank, invalid and unterminated lines are skipped.

    Memory: ONE buffer of ``ROWS_BUF`` bytes per call (or the caller's), read into
    (``readinto``) again and again, the start of a line cut by its end moved to its front; per
    row only what parsing it needs (the line as text, its fields, the values). A new 1 KB chunk
    per read and the ``carry + chunk`` joins needed 1 KB blocks: in the CircuitPython VM a
    replay failed "allocating 1025 bytes" with 12 KB free in no piece over 640 B.
    """
    fs = getattr(source, "fs", source)
    if "/" not in path and hasattr(source, "path"):
        path = source.path(path)
    f = fs.open(path, "rb")
    try:
        if buf is None:
            buf = bytearray(ROWS_BUF)
        elif len(buf) < ROWS_BUF:
            raise ValueError("read_rows needs ROWS_BUF bytes")
        mv = memoryview(buf)[:ROWS_BUF]
        readinto = getattr(f, "readinto", None)
        end = _read_into(f, readinto, mv)
        nl = buf.find(b"\n", 0, end)
        parsed = _parse_header(mv[:nl]) if nl >= 0 else None
        if parsed is None:
            return
        spec, sep = parsed
        pos = start_offset if start_offset > nl + 1 else nl + 1
        f.seek(pos)  # buf[0] is at file offset pos
        end = 0  # bytes in buf: the start of a line cut off by the last read
        skip = False  # inside an overlong line
        while True:
            got = _read_into(f, readinto, mv[end:])
            if not got:
                return  # an unterminated last line is not a row
            end += got
            start = 0
            while True:
                i = buf.find(b"\n", start, end)
                if i < 0:
                    break
                if skip:
                    skip = False
                elif i - start <= LINE_MAX:
                    # without its CR: decoding gives the line's text, strip() no copy
                    e = i - 1 if i > start and buf[i - 1] == 13 else i
                    row = _parse_line(mv[start:e], spec, sep)
                    if row is not None:
                        yield (row[0], row[1], pos + i + 1) if with_offset else row
                start = i + 1
            if end - start > LINE_MAX:  # no line end in sight: an overlong line, skipped
                pos += end
                end = 0
                skip = True
            else:
                mv[: end - start] = mv[start:end]
                pos += start
                end -= start
    finally:
        f.close()


def _read_into(f, readinto, view):
    """Read into memoryview ``view`` from ``f``; the bytes read (0 at the end). ``read`` and a
    copy where the file has no ``readinto`` (an ``fs`` stand-in)."""
    if readinto is not None:
        return readinto(view) or 0
    data = f.read(len(view))
    view[: len(data)] = data
    return len(data)


def _stamp(reading, epoch_utc, std, eu, flag=None):
    """``(local tuple, offset minutes, utc epoch)`` of a row, or None when its time is unknown.

    ``flag`` (``extras["meter_clock"]``): CLOCK_BOARD stamps from ``epoch_utc`` (the meter's
    clock is wrong), CLOCK_METER_WRONG from the meter's time even before 2020 (no other)."""
    t = reading.meter_time
    ok_clock = epoch_utc is not None and epoch_utc >= _MIN_EPOCH
    if flag == CLOCK_BOARD:
        t = None
    first = _OLD_YEAR if flag == CLOCK_METER_WRONG else _MIN_YEAR
    if t is not None and _valid_time(t, first):
        naive = _naive(t)
        off = reading.utc_offset
        if off is None and ok_clock:
            off = (naive - int(epoch_utc) + 450) // 900 * 15
            if off > 900 or off < -900:
                off = None
        if off is None:
            off = std
            if eu and eu_offset(naive - off * 60, std) != off:
                off += 60
        return t, off, naive - off * 60
    if not ok_clock:
        return None
    epoch = int(epoch_utc)
    off = eu_offset(epoch, std) if eu else std
    local = epoch + off * 60
    days = local // 86400
    sec = local - days * 86400
    ymd = civil_from_days(days)
    return (ymd[0], ymd[1], ymd[2], sec // 3600, sec // 60 % 60, sec % 60), off, epoch


def _make_spec(values, flag=None):
    """The column spec of a new file for a meter that sends ``values`` (``flag``: the first
    row's meter clock is wrong, the file gets the flag column)."""
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
    if flag:
        spec.append(_FLAG_SPEC)
    return spec


def _header(spec, dialect):
    """The header line (bytes, CRLF) of ``spec`` in ``dialect``."""
    sep, tlabel, olabel, pflabel = _DIALECTS[dialect]
    labels = [tlabel, olabel]
    for key, _fmt, _src in spec:
        labels.append(pflabel if key == DERIVED_PF else _LABELS.get(key, key))
    return (sep.join(labels) + "\r\n").encode()


def _format_row(spec, sep, comma, t, off, values, derived, extras, energy_offset_wh):
    """One data line (bytes, CRLF) of ``spec``; NaN, infinity and non-numbers give empty fields."""
    parts = []
    for key, fmt, src in spec:
        if src == 0:
            v = values.get(key)
            if v is not None and key == A_PLUS:
                v += energy_offset_wh
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
    body = sep.join(parts)
    if comma:
        body = body.replace(".", ",")
        when = "%02d.%02d.%04d %02d:%02d:%02d" % (t[2], t[1], t[0], t[3], t[4], t[5])
    else:
        when = "%04d-%02d-%02d %02d:%02d:%02d" % t
    a = off if off >= 0 else -off
    zone = "%s%02d:%02d" % ("+" if off >= 0 else "-", a // 60, a % 60)
    return (when + sep + zone + sep + body + "\r\n").encode()


def _scan_tail(f, hdr_end, size, spec, sep):
    """``(good_end, last_epoch, last_line)``: where the rows end and the last row; None when the
    last complete line is not one of our rows (the file is then left as it is).

    Only what follows the last line end (a partial row: our rows end with their LF, so a torn
    write leaves a line without one) and lines of NUL bytes before it (FAT grew the file before
    its data arrived) are outside ``good_end``: a complete line is never cut.
    """
    nl = _rfind_nl(f, hdr_end, size)
    if nl < 0:
        return hdr_end, None, None
    good_end = end = nl + 1
    for _ in range(_BACK_LINES):
        if end <= hdr_end:
            break
        p = _rfind_nl(f, hdr_end, end - 1)
        start = p + 1 if p >= 0 else hdr_end
        if end - start > LINE_MAX:
            return None
        f.seek(start)
        line = f.read(end - start)
        body = line.strip()
        if not body:  # an empty line, or one our repair blanked
            end = start
            continue
        if not body.replace(b"\0", b"").strip():  # NUL garbage: never a line anyone wrote
            good_end = end = start
            continue
        row = _parse_line(body, spec, sep)
        if row is None:
            return None
        return good_end, row[0], line
    return good_end, None, None


def _num(v):
    return v is not None and isinstance(v, (int, float)) and not isinstance(v, bool)
