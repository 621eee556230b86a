# SPDX-License-Identifier: MIT
"""Log files for the web interface: safe names, listing, day/month streams, upload, delete.

Every path the web server opens is ``LOG_DIR + "/" + name`` where ``name`` passed
:func:`safe_name` (letters, digits, ``.``, ``_``, ``-``; no leading dot; at most 64 chars) and
the entry is a regular file, not a symlink or directory (checked with ``lstat`` where the
platform has it). There is no other way from a URL to the filesystem, so ``..``, backslashes,
absolute paths and percent-encoded variants cannot leave the log directory.

Streams are generators yielding memoryviews of one reused buffer (the consumer sends each one
completely before asking for the next); the web server advances them a slice per loop pass.
"""

import os

from ..datalog.sd import is_log_name, sort_log_names

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_NAME_MAX = const(64)
_HEAD_READ = const(1024)  # a CSV header line is shorter than this (csvlog's _HEAD_MAX)
_S_IFMT = const(0o170000)
_S_IFREG = const(0o100000)
_ALLOWED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
_HEX = "0123456789abcdefABCDEF"


def unquote(text, plus=False):
    """Percent-decode ``text`` (UTF-8); ``plus`` also turns ``+`` into a space (form bodies).

    :raises ValueError: on a bad escape or bytes that are not UTF-8
    """
    if plus:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    raw = text.encode()
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25:  # %
            pair = raw[i + 1 : i + 3].decode()
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise ValueError("bad percent escape")
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(b)
            i += 1
    try:
        return bytes(out).decode()
    except UnicodeError:
        raise ValueError("not UTF-8") from None


def parse_form(body):
    """``application/x-www-form-urlencoded`` bytes -> dict of str (last value wins).

    :raises ValueError: on bad escapes or non-UTF-8 input
    """
    out = {}
    text = bytes(body).decode()
    for pair in text.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        out[unquote(key, True)] = unquote(value, True)
    return out


def safe_name(name):
    """True if ``name`` is a plain file name the web interface may touch."""
    if not name or len(name) > _NAME_MAX or name[0] == "." or name in (".", ".."):
        return False
    for ch in name:
        if ch not in _ALLOWED:
            return False
    return True


def clean_upload_name(name):
    """Sanitise an uploaded file name: base name only, unsafe characters replaced by ``_``.

    :returns: the cleaned name, or None when nothing usable is left
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    out = []
    for ch in name:
        out.append(ch if ch in _ALLOWED else "_")
    name = "".join(out).lstrip(".")[-_NAME_MAX:].lstrip(".")
    return name if safe_name(name) else None


def file_size(fs, path):
    """Size of the regular file at ``path``, or None (missing, directory, symlink, error)."""
    mode = None
    real = getattr(fs, "real", None)
    lstat = getattr(os, "lstat", None)
    try:
        if real is not None and lstat is not None:
            st = lstat(real(path))  # does not follow a symlink
            mode = st[0]
            size = st[6]
        else:
            st = fs.stat(path)
            mode = st[0]
            size = st[6]
    except (OSError, TypeError, ValueError):
        return None
    if mode is not None and mode & _S_IFMT != _S_IFREG:
        return None
    return size


def list_names(fs, log_dir):
    """Safe names in ``log_dir``: day files newest first, then the rest sorted (raises OSError)."""
    days = []
    other = []
    for name in fs.listdir(log_dir):
        if not safe_name(name):
            continue
        (days if is_log_name(name) else other).append(name)
    sort_log_names(days)
    days.reverse()
    other.sort()
    return days + other


def listing_chunks(fs, log_dir, names, per_chunk=16):
    """JSON text ``{"files":[{"name":..,"size":..},..]}`` in pieces, a few stats per piece."""
    yield '{"files":['
    first = True
    piece = []
    for name in names:
        size = file_size(fs, log_dir + "/" + name)
        if size is None:
            continue
        piece.append(
            ('{"name":"%s","size":%d}' % (name, size))
            if first
            else (',{"name":"%s","size":%d}' % (name, size))
        )
        first = False
        if len(piece) >= per_chunk:
            yield "".join(piece)
            piece = []
    if piece:
        yield "".join(piece)
    yield "]}"


def _first_line(fs, path):
    f = fs.open(path, "rb")
    try:
        head = f.read(_HEAD_READ)
    finally:
        f.close()
    nl = head.find(b"\n")
    return bytes(head[: nl + 1]) if nl >= 0 else None


def month_parts(fs, log_dir, month):
    """``[(path, skip, length), ...]`` to stream ``month`` ("YYYY-MM") as one CSV, oldest first.

    The first file is sent whole; a later file's first line is skipped when it equals the first
    file's header (same columns), so the header appears once. A file with other columns (another
    meter, a ``-N`` part) keeps its own header line so every row stays interpretable. Sizes are
    taken now: a file still being appended is sent up to its current length.
    """
    names = [n for n in fs.listdir(log_dir) if is_log_name(n) and n.startswith(month + "-")]
    sort_log_names(names)
    parts = []
    header = None
    for name in names:
        path = log_dir + "/" + name
        size = file_size(fs, path)
        if not size:
            continue
        skip = 0
        line = _first_line(fs, path)
        if header is None:
            header = line
        elif line is not None and line == header:
            skip = len(line)
        parts.append((path, skip, size - skip))
    return parts


def file_chunks(fs, parts, buf):
    """Yield memoryviews of ``buf`` with the bytes of ``parts`` (see :func:`month_parts`).

    :raises OSError: when a file is shorter than announced (deleted or cut meanwhile)
    """
    mv = memoryview(buf)
    size = len(buf)
    for path, skip, length in parts:
        f = fs.open(path, "rb")
        try:
            if skip:
                f.seek(skip)
            readinto = getattr(f, "readinto", None)
            left = length
            while left > 0:
                n = size if left > size else left
                if readinto is not None:
                    got = readinto(mv[:n])
                else:
                    data = f.read(n)
                    got = len(data)
                    mv[:got] = data
                if not got:
                    raise OSError(5, "file shrank during download")
                left -= got
                yield mv[:got]
        finally:
            f.close()


class Upload:
    """Receives a request body into a new file in slices (see ``web.WebServer``).

    The file is created on the first slice; on any failure or abort the partial file is removed.
    """

    def __init__(self, fs, path, length, early):
        self.fs = fs
        self.path = path
        self.length = length
        self.received = 0
        self._f = None
        self._early = early

    def write(self, data):
        """Append ``data`` (bytes-like); returns True once ``length`` bytes are stored."""
        if self._f is None:
            self._f = self.fs.open(self.path, "wb")
            early = self._early
            self._early = None
            if early:
                self.write(early)
        if data:
            room = self.length - self.received
            if len(data) > room:
                data = data[:room]
            mv = memoryview(data)
            while mv:
                n = self._f.write(mv)
                if n is None:
                    n = len(mv)
                mv = mv[n:]
            self.received += len(data)
        return self.received >= self.length

    def finish(self):
        """Flush, sync and close; the file is complete."""
        if self._f is None:
            self.write(b"")
        f = self._f
        self._f = None
        f.flush()
        sync = getattr(self.fs, "sync", None)
        if sync is not None:
            sync(f)
        f.close()

    def abort(self):
        """Close and remove the partial file (never raises)."""
        f = self._f
        self._f = None
        try:
            if f is not None:
                f.close()
                self.fs.remove(self.path)
        except OSError:
            pass
