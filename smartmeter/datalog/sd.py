# SPDX-License-Identifier: MIT
"""The SD card as the CSV log sees it: state, remount with backoff, free space, retention.

Filesystem access goes through a small injected object (``fs``) so host tests can use a fake
with real failure semantics (``tests/host/fakefs.py``). The interface, all paths absolute:

- ``open(path, mode)`` with mode ``"rb"``, ``"ab"``, ``"r+b"`` or ``"wb"``; the file object
  needs ``read(n)``, ``write(buf) -> int``, ``seek(pos)``, ``flush()``, ``close()``
- ``listdir(path)``, ``remove(path)``, ``mkdir(path)``
- ``stat(path)`` (size at index 6), ``statvfs(path)`` (frsize at 1, blocks at 2, bavail at 4)
- ``sync(f=None)``: make what was written durable (device: ``os.sync()``; PC: ``fsync``)
- optional ``truncate(path, size) -> bool``; CircuitPython has no truncate, so the log never
  depends on it (see ``csvlog``)

States: ``"ok"``, ``"missing"`` (mount failed / card gone), ``"full"`` (ENOSPC), ``"error"``
(any other OSError, e.g. EIO or a read-only volume), ``"disabled"`` (no card configured).
After a fault the card is remounted with exponential backoff (2 s doubling to 30 s), so a
missing card costs at most one mount attempt per 30 s; ``generation`` increases with every
successful mount so the log knows to reopen and re-check its file.
"""

import os
import sys

from ..oserrors import errno_of
from ..timeutil import Backoff

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# errno values (Linux/newlib numbering, shared by CPython on Linux and Circuit/MicroPython; the
# MicroPython errno module lacks ENOSPC, so they are spelled out here).
ENOENT = const(2)
EIO = const(5)
ENXIO = const(6)
EEXIST = const(17)
ENODEV = const(19)
ENOSPC = const(28)
EROFS = const(30)
ENOMEDIUM = const(123)

_BACKOFF_MIN_MS = const(2000)
_BACKOFF_MAX_MS = const(30000)
_RESUME_FREE = const(16384)  # bytes free before a "full" card is written to again
_MB = const(1048576)

_MISSING_CODES = (ENODEV, ENXIO, ENOMEDIUM)
_S_IFMT = const(0o170000)
_S_IFREG = const(0o100000)
_RESERVE_DAYS = const(31)  # an upload must leave this many days of logging free (see reserve())
_DAY_GUESS = const(4194304)  # a day's CSV before a whole day is on the card (1 s meters: ~10 MB)
_DAYS_MEASURED = const(8)  # dates whose files size a day


class RealFS:
    """The ``fs`` interface on top of ``os`` and ``open()`` (CircuitPython, MicroPython, CPython).

    :param fsync: on CPython, ``fsync`` the file on ``sync(f)`` (off: faster, less durable)
    :param root: a folder that stands for ``/`` (the simulator maps ``/sd`` into its data dir)
    """

    def __init__(self, fsync=True, root=""):
        impl = sys.implementation.name
        self._device = impl in ("circuitpython", "micropython")
        self._fsync = fsync
        self.root = root.rstrip("/")

    def real(self, path):
        """The host path of ``path``."""
        return self.root + path

    def open(self, path, mode):
        """Open ``path`` in binary ``mode``; unbuffered on CPython so a write error is seen now."""
        if self._device:
            return open(self.root + path, mode)
        return open(self.root + path, mode, buffering=0)

    def listdir(self, path):
        return os.listdir(self.root + path)

    def remove(self, path):
        os.remove(self.root + path)

    def mkdir(self, path):
        os.mkdir(self.root + path)

    def stat(self, path):
        return os.stat(self.root + path)

    def statvfs(self, path):
        return os.statvfs(self.root + path)

    def sync(self, f=None):
        """Push written data to the medium: ``os.sync()`` on the device, ``fsync`` on a PC."""
        if self._device:
            sync = getattr(os, "sync", None)
            if sync is not None:
                sync()
        elif self._fsync and f is not None:
            os.fsync(f.fileno())

    def truncate(self, path, size):
        """Cut ``path`` to ``size`` bytes; False where the platform cannot (CircuitPython)."""
        trunc = getattr(os, "truncate", None)
        if trunc is None:
            return False
        trunc(self.root + path, size)
        return True


# Files the firmware keeps next to or in the log directory for itself (``usagelog.SLOTS``): never
# uploaded over, never deleted from the web page.
OWN_NAMES = ("usage-a.bin", "usage-b.bin")


def is_own_name(name):
    """True for a name the firmware writes itself: a day file (any part, any letter case - FAT
    ignores case) or one of ``OWN_NAMES``. Uploads may not use these names."""
    low = name.lower()
    return is_log_name(low) or low in OWN_NAMES


def is_log_name(name):
    """``YYYY-MM-DD.csv`` or ``YYYY-MM-DD-N.csv`` (N of 1 to 3 digits). Checked character by
    character: no slices, so listing a card of day files allocates no garbage per name."""
    n = len(name)
    if n < 14 or n > 18 or n == 15 or not name.endswith(".csv"):
        return False
    if name[4] != "-" or name[7] != "-" or (n > 14 and name[10] != "-"):
        return False
    for i in (0, 1, 2, 3, 5, 6, 8, 9):
        if not "0" <= name[i] <= "9":
            return False
    for i in range(11, n - 4):
        if not "0" <= name[i] <= "9":
            return False
    return True


def part_of(name):
    """Part number of a log file name: 1 for ``YYYY-MM-DD.csv``, N for ``YYYY-MM-DD-N.csv``."""
    rest = name[10:-4]
    return int(rest[1:]) if rest else 1


def log_order(name):
    """Sort key of a day file name: date, then part number."""
    return (name[:10], part_of(name))


def sort_log_names(names):
    """Sort day file names (``is_log_name``) in place by :func:`log_order`, allocating nothing
    but for the days with parts.

    Sorted as plain strings first: MicroPython's ``sort(key=...)`` calls the key at every
    comparison, and its quicksort makes about n * n / 2 of them on names that are already in
    order, as FAT lists them - a year of day files (400) allocated 6.5 MB of keys in the
    CircuitPython VM at every listing (the usage replay lists at every boot). Plain order is
    right but within a day: its parts (``D-2.csv``, ``D-10.csv``) come before ``D.csv`` and
    ``-10`` before ``-2``; those few runs are sorted by key.
    """
    names.sort()
    n = len(names)
    i = 0
    while i < n:
        if names[i][10] != "-":  # "D.csv": a day without parts before it
            i += 1
            continue
        day = names[i][:10]
        j = i + 1
        while j < n and names[j].startswith(day):
            j += 1
        run = names[i:j]
        run.sort(key=log_order)
        for k in range(j - i):
            names[i + k] = run[k]
        i = j


class Storage:
    """SD card state machine and file housekeeping for the log directory.

    :param fs: filesystem object (see module docstring) or None (logging disabled)
    :param mount: callable that (re)mounts the card, raising on failure; None = always mounted
    :param log_dir: absolute directory of the day files, e.g. ``"/sd/logs"``
    :param clock: the app's clock, ``ticks_ms()`` (wrapping); needed unless ``fs`` is None
    :param min_free_mb: retention deletes the oldest day while free space is below this
    """

    def __init__(self, fs, mount=None, log_dir="/sd/logs", clock=None, min_free_mb=100):
        self.fs = fs
        self._mount = mount
        self.log_dir = log_dir.rstrip("/") or "/"
        if fs is not None and clock is None:
            raise TypeError("Storage needs a clock")
        self._clock = clock
        self.min_free = int(min_free_mb * _MB)
        self.state = "disabled" if fs is None else "missing"
        self.free_bytes = None
        self.total_bytes = None
        self.generation = 0  # +1 per successful mount: open files must be reopened and checked
        self.mounts = 0
        self.remounts = 0  # successful mounts after a fault
        self.mount_attempts = 0
        self.faults = 0
        self.deleted = 0  # log files removed by retention
        self.uploads_deleted = 0  # other files in the log folder removed by retention first
        self.upload_deleted = None  # the name of the last one (told on the Files page)
        self.keep = ()  # paths (lower case) in the log folder retention never deletes
        self.last_error = ""
        self.protect = ()  # name prefixes retention never deletes (set by the log: today's date)
        self.writing = None  # name of the day file being appended to (never deleted by the web)
        self._backoff = Backoff(_BACKOFF_MIN_MS, _BACKOFF_MAX_MS)  # between mount attempts

    # -- state -----------------------------------------------------------------------------
    def path(self, name):
        """Absolute path of ``name`` in the log directory."""
        return self.log_dir + "/" + name

    def begin(self):
        """First mount attempt (at start-up); returns True when the card is usable."""
        if self.state == "disabled":
            return False
        return self._try_mount()

    def available(self):
        """True when a write may be attempted now. Retries a mount when its backoff has passed,
        and re-checks a full card (running retention). Never raises."""
        st = self.state
        if st == "ok":
            return True
        if st == "disabled":
            return False
        if st == "full":
            try:
                self.retention()
                self.refresh_space()
            except OSError as exc:
                self.fault(exc)
                return False
            if self.free_bytes is not None and self.free_bytes >= _RESUME_FREE:
                self.state = "ok"
                return True
            return False
        if not self._backoff.due(self._clock.ticks_ms()):
            return False
        return self._try_mount()

    poll = available  # the app's timed work calls this so a card comes back without telegrams

    def _try_mount(self):
        self.mount_attempts += 1
        now = self._clock.ticks_ms()
        stage = "mount"
        try:
            if self._mount is not None:
                self._mount()
            stage = "dir"
            self._ensure_dir()
            self.refresh_space()
        except Exception as exc:  # sdioio/storage raise OSError, ValueError or RuntimeError
            code = errno_of(exc) if isinstance(exc, OSError) else None
            if stage == "mount" or code is None or code in _MISSING_CODES:
                self.state = "missing"
            else:
                self.state = "error"
            self.last_error = _describe(exc)
            self._backoff.fail(now)
            return False
        if self.mounts and self.faults:
            self.remounts += 1
        self.mounts += 1
        self.generation += 1
        self.state = "ok"
        self._backoff.ok()
        return True

    def _ensure_dir(self):
        fs = self.fs
        try:
            fs.stat(self.log_dir)
        except OSError:
            fs.mkdir(self.log_dir)

    def fault(self, exc):
        """Record a failed filesystem operation and choose the state it means."""
        self.faults += 1
        self.last_error = _describe(exc)
        code = errno_of(exc)
        if code == ENOSPC:
            self.state = "full"
            return
        if code not in _MISSING_CODES:
            try:  # EIO from a file handle: is the card still there at all?
                self.fs.statvfs(self.log_dir)
            except OSError as probe:
                if errno_of(probe) in _MISSING_CODES:
                    code = ENODEV
        self.state = "missing" if code in _MISSING_CODES else "error"
        self._backoff.fail(self._clock.ticks_ms())

    # -- space -----------------------------------------------------------------------------
    def refresh_space(self):
        """Read free and total bytes of the card (raises OSError)."""
        st = self.fs.statvfs(self.log_dir)
        self.free_bytes = st[1] * st[4]
        self.total_bytes = st[1] * st[2]
        return self.free_bytes

    def log_files(self):
        """Names of the day files in the log directory, oldest first (raises OSError)."""
        names = [n for n in self.fs.listdir(self.log_dir) if is_log_name(n)]
        sort_log_names(names)
        return names

    def list_days(self):
        """``[(name, size), ...]`` of the day files, newest first (empty when unavailable)."""
        if self.state in ("disabled", "missing", "error"):
            return []
        out = []
        try:
            names = self.log_files()
            names.reverse()
            for name in names:
                out.append((name, self.fs.stat(self.path(name))[6]))
        except OSError as exc:
            self.fault(exc)
        return out

    def uploads(self):
        """``[name, ...]`` of the regular files in the log folder the log does not write itself
        (uploads, files copied there), oldest first; never a dot-file or one of ``keep``."""
        out = []
        for name in self.fs.listdir(self.log_dir):
            path = self.path(name)
            if name[:1] == "." or is_own_name(name) or path.lower() in self.keep:
                continue
            try:
                st = self.fs.stat(path)
            except OSError:
                continue
            if st[0] & _S_IFMT == _S_IFREG:
                out.append((st[8], name))
        out.sort()
        return [e[1] for e in out]

    def reserve(self):
        """Free space an upload must leave: ``min_free`` plus ``_RESERVE_DAYS`` days of logging
        (a day: the largest of the newest whole dates on the card, else ``_DAY_GUESS``), so a
        month passes before logging needs the room back - and then retention takes it from
        the uploads, never from a log day (raises OSError)."""
        sizes = {}
        names = self.log_files()
        today = names[-1][:10] if names else None
        for name in names[-4 * _DAYS_MEASURED :]:
            date = name[:10]
            if date != today:
                sizes[date] = sizes.get(date, 0) + self.fs.stat(self.path(name))[6]
        day = _DAY_GUESS
        if sizes:
            day = max(sizes.values())
        return self.min_free + _RESERVE_DAYS * day

    def retention(self, protect=None):
        """Delete uploaded files, then the oldest day files, while free space < ``min_free``.

        Files in the log folder the log does not write (uploads) go first, oldest first: an
        upload never costs a log day. Never deletes a name starting with one of ``protect``
        (default ``self.protect``: today's date and the file being written), nor a file of the
        newest date on the card (today's, even at boot before the clock is known). Ends after at
        most one pass over the listing.

        :returns: number of log files deleted
        :raises OSError: from the filesystem (the caller records it with :meth:`fault`)
        """
        if self.state in ("disabled", "missing", "error"):
            return 0
        if protect is None:
            protect = self.protect
        if self.refresh_space() >= self.min_free:
            return 0
        for name in self.uploads():
            self.fs.remove(self.path(name))
            self.uploads_deleted += 1
            self.upload_deleted = name
            if self.refresh_space() >= self.min_free:
                return 0
        deleted = 0
        names = self.log_files()
        newest = names[-1][:10] if names else None
        for name in names:
            if _protected(name, protect) or name[:10] == newest:
                continue
            self.fs.remove(self.path(name))
            deleted += 1
            self.deleted += 1
            if self.refresh_space() >= self.min_free:
                break
        return deleted


def _protected(name, protect):
    for prefix in protect:
        if prefix and name.startswith(prefix):
            return True
    return False


def _describe(exc):
    code = errno_of(exc) if isinstance(exc, OSError) else None
    if code is not None:
        return "%s errno %d" % (type(exc).__name__, code)
    return type(exc).__name__
