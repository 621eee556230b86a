"""An in-memory filesystem with real failure semantics, for the CSV log and storage tests.

It implements the ``fs`` interface of :mod:`smartmeter.datalog.sd` and models what matters on an
SD card:

- **Durability.** Written bytes are visible at once but only *durable* after ``sync()`` (or
  ``flush()`` with ``durable_on="flush"``). :meth:`FakeFS.power_cut` keeps the durable bytes plus
  a random prefix of everything written since (a torn tail), optionally as NUL garbage like a
  FAT file whose size was updated before its data; a file created and never made durable may
  vanish. Every open handle dies (EIO).
- **Power cut at byte N.** ``cut_at = N`` raises :class:`PowerCut` (a BaseException, so product
  code cannot swallow it) once N bytes have been written in total, after writing the bytes up to N.
- **Space.** ``capacity`` bytes; a write past it writes what fits and raises ENOSPC, as
  MicroPython does. ``statvfs`` reports the true free space.
- **Faults.** :meth:`inject` makes the next call(s) of an operation raise an errno, optionally
  after writing part of the buffer (ENOSPC/EIO at byte N of a write).
- **Removal.** :meth:`remove_card` tears pending data like a power cut; afterwards every call
  raises ENODEV until :meth:`insert_card` and :meth:`mount` (the injected mount callable).
"""

from __future__ import annotations

import random

ENOENT = 2
EIO = 5
EEXIST = 17
ENODEV = 19
ENOSPC = 28
EISDIR = 21


class PowerCut(BaseException):
    """The power went off in the middle of a write."""


class _Node:
    __slots__ = ("data", "durable", "pending", "base_empty")

    def __init__(self):
        self.data = bytearray()
        self.durable = None  # bytes once committed; None = never made durable
        self.pending = []  # (offset, bytes) written since the last commit
        self.base_empty = False  # "wb" truncation pending


def _oserror(code, path=""):
    return OSError(code, "fake %d" % code, path)


class FakeHandle:
    def __init__(self, fs, node, path, mode):
        self._fs = fs
        self._node = node
        self._path = path
        self._gen = fs.gen
        self._read = "r" in mode or "+" in mode
        self._write = "a" in mode or "w" in mode or "+" in mode
        self._append = "a" in mode
        self.pos = 0
        self.closed = False

    def _alive(self, op):
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if self._gen != self._fs.gen:
            raise _oserror(EIO, self._path)
        self._fs._check(op, self._path)

    def read(self, n=-1):
        self._alive("read")
        if not self._read:
            raise _oserror(EIO, self._path)
        data = self._node.data
        end = len(data) if n is None or n < 0 else min(len(data), self.pos + n)
        out = bytes(data[self.pos : end])
        self.pos = max(self.pos, end)
        return out

    def readinto(self, buf):
        """Fill ``buf`` (bytearray, memoryview or array) from the file; the bytes read."""
        self._alive("read")
        if not self._read:
            raise _oserror(EIO, self._path)
        view = memoryview(buf).cast("B")
        data = self._node.data[self.pos : self.pos + len(view)]
        view[: len(data)] = data
        self.pos += len(data)
        return len(data)

    def seek(self, pos, whence=0):
        self._alive("seek")
        if whence == 2:
            pos += len(self._node.data)
        elif whence == 1:
            pos += self.pos
        self.pos = max(0, pos)
        return self.pos

    def tell(self):
        return self.pos

    def write(self, buf):
        self._alive("write")
        if not self._write:
            raise _oserror(EIO, self._path)
        return self._fs._write(self, bytes(buf))

    def flush(self):
        self._alive("flush")
        if self._fs.durable_on == "flush":
            self._fs._commit(self._node)

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self._gen == self._fs.gen and self._fs.durable_on == "flush":
            self._fs._commit(self._node)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FakeFS:
    """See the module docstring.

    :param capacity: card size in bytes (all file bytes count, nothing else)
    :param durable_on: "sync" (only ``sync()`` commits) or "flush" (FatFs-like f_sync on flush)
    :param can_truncate: whether ``truncate()`` works (CircuitPython: no)
    """

    def __init__(self, capacity=64 * 1024 * 1024, durable_on="sync", can_truncate=False, block=512):
        self.capacity = capacity
        self.durable_on = durable_on
        self.can_truncate = can_truncate
        self.block = block
        self.files: dict[str, _Node] = {}
        self.dirs = {"/"}
        self.gen = 0
        self.card_present = True
        self.mounted = True
        self.bytes_written = 0
        self.cut_at = None
        self.injections = []
        self.calls = {}  # op -> count (for assertions on how often something was attempted)

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _norm(path):
        if not path.startswith("/"):
            raise ValueError("absolute paths only: %r" % path)
        return path.rstrip("/") or "/"

    @staticmethod
    def _parent(path):
        return path.rsplit("/", 1)[0] or "/"

    def used(self):
        return sum(len(n.data) for n in self.files.values())

    def free(self):
        return max(0, self.capacity - self.used())

    def _check(self, op, path=""):
        self.calls[op] = self.calls.get(op, 0) + 1
        if not self.card_present or not self.mounted:
            raise _oserror(ENODEV, path)
        for inj in self.injections:
            if inj["op"] == op and inj["times"] > 0 and inj.get("after_bytes") is None:
                inj["times"] -= 1
                raise _oserror(inj["errno"], path)

    def _write_limit(self):
        for inj in self.injections:
            if inj["op"] == "write" and inj["times"] > 0 and inj.get("after_bytes") is not None:
                return inj
        return None

    def _write(self, handle, data):
        node = handle._node
        pos = len(node.data) if handle._append else handle.pos
        growth = max(0, pos + len(data) - len(node.data))
        n = len(data)
        err = None
        if growth > self.free():
            n = len(data) - (growth - self.free())
            err = ENOSPC
        inj = self._write_limit()
        if inj is not None:  # the next write stops after ``after_bytes`` and fails
            n = min(n, inj["after_bytes"])
            inj["times"] -= 1
            err = inj["errno"]
        cut = False
        if self.cut_at is not None and self.bytes_written + n >= self.cut_at:
            n = self.cut_at - self.bytes_written
            cut = True
        n = max(0, n)
        if n:
            chunk = data[:n]
            node.data[pos : pos + n] = chunk
            node.pending.append((pos, chunk))
            self.bytes_written += n
            handle.pos = pos + n
        if cut:
            self.cut_at = None
            raise PowerCut("power cut after %d bytes" % self.bytes_written)
        if err is not None:
            raise _oserror(err, handle._path)
        return n

    def _commit(self, node):
        node.durable = bytes(node.data)
        node.pending = []
        node.base_empty = False

    # -- the fs interface ---------------------------------------------------------------------
    def open(self, path, mode):
        path = self._norm(path)
        self._check("open", path)
        if self._parent(path) not in self.dirs:
            raise _oserror(ENOENT, path)
        if path in self.dirs:
            raise _oserror(EISDIR, path)
        node = self.files.get(path)
        if node is None:
            if mode.startswith("r"):
                raise _oserror(ENOENT, path)
            node = self.files[path] = _Node()
        elif mode.startswith("w"):
            node.data = bytearray()
            node.pending = []
            node.base_empty = True
        return FakeHandle(self, node, path, mode)

    def listdir(self, path):
        path = self._norm(path)
        self._check("listdir", path)
        if path not in self.dirs:
            raise _oserror(ENOENT, path)
        prefix = path.rstrip("/") + "/"
        names = [
            p[len(prefix) :]
            for p in list(self.files) + list(self.dirs)
            if p != path and p.startswith(prefix)  # a file beside the folder is not in it
        ]
        return [n for n in names if n and "/" not in n]

    def remove(self, path):
        path = self._norm(path)
        self._check("remove", path)
        if path not in self.files:
            raise _oserror(ENOENT, path)
        del self.files[path]

    def mkdir(self, path):
        path = self._norm(path)
        self._check("mkdir", path)
        if path in self.dirs or path in self.files:
            raise _oserror(EEXIST, path)
        if self._parent(path) not in self.dirs:
            raise _oserror(ENOENT, path)
        self.dirs.add(path)

    def stat(self, path):
        path = self._norm(path)
        self._check("stat", path)
        if path in self.dirs:
            return (0o040000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        node = self.files.get(path)
        if node is None:
            raise _oserror(ENOENT, path)
        return (0o100000, 0, 0, 0, 0, 0, len(node.data), 0, 0, 0)

    def statvfs(self, path):
        self._check("statvfs", path)
        b = self.block
        free = self.free() // b
        return (b, b, self.capacity // b, free, free, 0, 0, 0, 0, 255)

    def sync(self, f=None):
        self._check("sync")
        for node in self.files.values():
            if node.pending or node.durable is None or node.base_empty:
                self._commit(node)

    def truncate(self, path, size):
        path = self._norm(path)
        self._check("truncate", path)
        if not self.can_truncate:
            return False
        node = self.files[path]
        del node.data[size:]
        self._commit(node)
        return True

    # -- test controls -------------------------------------------------------------------------
    def mount(self):
        """The injected ``mount`` callable: works only with a card in the slot."""
        self.calls["mount"] = self.calls.get("mount", 0) + 1
        if not self.card_present:
            raise _oserror(ENODEV)
        self.mounted = True
        self.gen += 1

    def inject(self, op, errno, times=1, after_bytes=None):
        """Make the next ``times`` calls of ``op`` raise ``errno``; for a write, after writing
        ``after_bytes`` bytes of it."""
        inj = {"op": op, "errno": errno, "times": times, "after_bytes": after_bytes}
        self.injections.append(inj)

    def _tear(self, rng, garbage=False):
        for path in list(self.files):
            node = self.files[path]
            if not node.pending and node.durable is not None and not node.base_empty:
                continue
            base = bytearray(b"" if node.base_empty or node.durable is None else node.durable)
            total = sum(len(c) for _, c in node.pending)
            # A third each: all pending bytes made it (FAT entry updated), none did, or a torn
            # random prefix (data sectors partly written).
            keep = 0
            if rng is not None:
                pick = rng.random()
                keep = total if pick < 1 / 3 else 0 if pick < 2 / 3 else rng.randint(0, total)
            for off, chunk in node.pending:
                if keep <= 0:
                    break
                part = chunk[:keep]
                keep -= len(part)
                if garbage:
                    part = b"\0" * len(part)
                base[off : off + len(part)] = part
            if node.durable is None and not base and (rng is None or rng.random() < 0.5):
                del self.files[path]
                continue
            node.data = base
            self._commit(node)
        self.gen += 1

    def power_cut(self, rng=None, garbage=False):
        """Power off and on: keep durable bytes plus a random torn prefix of the rest."""
        self.cut_at = None
        self._tear(rng if rng is not None else random.Random(0), garbage)

    def remove_card(self, rng=None):
        """Pull the card: pending bytes are torn (or lost); every call raises ENODEV."""
        self._tear(rng)
        self.card_present = False
        self.mounted = False

    def insert_card(self):
        """Put the card back; it must be mounted again (:meth:`mount`) before use."""
        self.card_present = True

    def content(self, path):
        return bytes(self.files[self._norm(path)].data)

    def durable(self, path):
        node = self.files.get(self._norm(path))
        return b"" if node is None or node.durable is None else node.durable

    def add_file(self, path, data):
        """Create a durable file directly (test set-up)."""
        path = self._norm(path)
        node = self.files[path] = _Node()
        node.data = bytearray(data)
        self._commit(node)
