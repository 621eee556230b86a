# SPDX-License-Identifier: MIT
"""The usage summary (``usage.Usage``) on the SD card: load, save atomically, rebuild from CSV.

Files: two slots in the board's private folder on the card (``configvalues.PRIVATE_DIR``:
``/sd/.smartmeter/usage-a.bin`` and ``usage-b.bin``, never servable whatever ``LOG_DIR`` is),
8968 bytes each (the quarter, hour, day and month rings and the month's peaks; files from
before quarters, 2864 bytes, and before grid fees and peaks, 7672 bytes, are loaded too: their
quarters / grid parts and peaks start empty). A save writes the slot *not* holding the newest
good copy (header with a sequence number and a Fletcher-32 checksum), so a power cut in the
middle of a save leaves the other slot intact: there is always one good copy (FAT has no atomic
rename and CircuitPython no ``truncate``). Saved when an hour closes, never per telegram (card
wear).

Start-up: the headers of both slots are read (32 bytes each) and the newer slot is loaded into
the summary piece by piece, straight into its arrays (``Usage.load``, checked as it is read: a
damaged one clears the summary and the other slot is tried; a file of an older version is read
whole, once after the update: ``usagefile.from_bytes``, a module loaded only then), and the day
files since its last telegram are replayed (catch-up: what happened between the last save and
the reboot). With no good slot (first start, card changed, both damaged) the summary is rebuilt
from the day files of the last 13 months.
Both run a slice per loop pass (``_ROWS_PER_POLL`` rows or ``_SLICE_MS``), so a year of CSV
never stalls the meter; readings that arrive meanwhile are in the CSV and are picked up there.
"""

from ..configvalues import PRIVATE_DIR, write_private
from ..protocol.reading import A_MINUS, A_PLUS
from ..timeutil import civil_from_days, days_from_civil, ticks_diff
from .csvformat import ROWS_BUF, read_rows
from .usage import Usage, local_day, read_head

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_ROWS_PER_POLL = const(400)
_SLICE_MS = const(30)
_REBUILD_DAYS = const(400)  # 13 months of day files (the month ring)
SLOTS = ("usage-a.bin", "usage-b.bin")
SLOT_PATHS = (PRIVATE_DIR + "/" + SLOTS[0], PRIVATE_DIR + "/" + SLOTS[1])


def _date(day):
    return "%04d-%02d-%02d" % civil_from_days(day)


class UsageSink:
    """Feeds the summary from every reading, keeps it on the card, publishes it to the state.

    :param state: the app State (``state.usage`` is set to the :class:`Usage`)
    :param storage: the SD :class:`~smartmeter.datalog.sd.Storage`, or None (RAM only)
    :param tariff: :class:`~smartmeter.datalog.usage.Tariff` or None
    :param energy_offset_wh: added to A+ like the CSV log does (``ENERGY_OFFSET_WH``)
    :param ticks_ms: millisecond tick source (bounds the replay slice)
    """

    name = "usage"

    def __init__(self, state, storage=None, tariff=None, energy_offset_wh=0, ticks_ms=None):
        self.state = state
        self.storage = storage
        self.usage = Usage(tariff)  # the one summary: loads go into its arrays
        self.offset = int(energy_offset_wh)
        self._ticks = ticks_ms
        self.saves = 0
        self.save_errors = 0
        self.loaded_from = None  # slot name, "rebuilt", or None (RAM only so far)
        self.replayed = 0  # CSV rows replayed
        self.replaying = False
        self._replay = None  # generator of rows
        self._dirty = False
        self._good = None  # slot index holding the newest good copy
        self._ready = False  # loaded or rebuilt: only then may a save replace the card's copy
        state.usage = self.usage
        self.start()

    # -- start-up ---------------------------------------------------------------------------
    def _fs(self):
        st = self.storage
        if st is None or st.fs is None or st.state not in ("ok", "full"):
            return None
        return st.fs

    def _path(self, slot):
        return SLOT_PATHS[slot]

    def start(self):
        """Load the newest good slot and start the catch-up, or start a rebuild."""
        fs = self._fs()
        if fs is None:
            return False
        heads = []  # (seq, slot, current) of each slot with a summary header, newest first
        for slot in (0, 1):
            try:
                f = fs.open(self._path(slot), "rb")
                try:
                    seq, current = read_head(f)
                finally:
                    f.close()
            except (OSError, ValueError):
                continue
            if heads and seq > heads[0][0]:
                heads.insert(0, (seq, slot, current))
            else:
                heads.append((seq, slot, current))
        self._good = None
        for _seq, slot, current in heads:
            if self._load(fs, slot, current):
                self._good = slot
                break
        if self._good is not None:
            self.loaded_from = SLOTS[self._good]
            since = self.usage.last_epoch
            first = None if since is None else _date(local_day(since) - 1)
        else:
            self.usage.clear()
            self.loaded_from = "rebuilt"
            first = ""
        self.state.usage = self.usage
        self._ready = True
        self._start_replay(first)
        return True

    def _load(self, fs, slot, current):
        """Load slot ``slot`` into the summary: a file of this version piece by piece into the
        rings' arrays (``Usage.load``: nothing of the file's size is allocated), an older one
        (once, after an update) whole. False when it is damaged or unreadable; the summary is
        then cleared (``load``) or unchanged (``usagefile.from_bytes``), never half loaded."""
        try:
            f = fs.open(self._path(slot), "rb")
            try:
                if current and hasattr(f, "readinto"):
                    self.usage.load(f)
                else:  # an older version's file, once after an update
                    from .usagefile import load_whole

                    load_whole(self.usage, f)
            finally:
                f.close()
        except (OSError, ValueError):
            return False
        return True

    def _start_replay(self, first_date):
        # the replay's one read buffer (1 KiB) is made now, at start-up, and goes with the
        # replay: made at its first slice, later in the boot, it found no 1 KiB block in the VM
        # ("allocating 1024 bytes" with 9.5 KB free at a board heap of 216 KiB). Where there is
        # none now (a start long after the boot: the card came later), the first slice tries.
        try:
            buf = bytearray(ROWS_BUF)
        except MemoryError:
            buf = None
        self._replay = self._rows(first_date, buf)
        self.replaying = True

    def _rows(self, first, buf):
        """Rows of the day files from date ``first`` on ("" = the last 13 months), oldest first;
        listed again at the end until a round finds nothing new, so rows written while the
        replay runs (new telegrams, a new day file at midnight) are read too. ``buf``: the
        buffer ``read_rows`` reads every file into (None: made now)."""
        read = {}  # file name -> offset read up to
        if buf is None:
            buf = bytearray(ROWS_BUF)
        while True:
            try:
                names = self.storage.log_files()
            except OSError:
                return
            if first == "" and names:
                newest = names[-1][:10]
                y, m, d = int(newest[:4]), int(newest[5:7]), int(newest[8:10])
                first = _date(days_from_civil(y, m, d) - _REBUILD_DAYS)
            # only the names from ``first`` on are kept while the replay runs: after a reboot
            # a day or two of a card's year of names (400: about 15 KB)
            skip = 0
            while skip < len(names) and names[skip] < (first or ""):
                skip += 1
            if skip:
                names = names[skip:]
            new = False
            for name in names:
                try:
                    for epoch, values, end in read_rows(
                        self.storage, name, read.get(name, 0), True, buf
                    ):
                        read[name] = end
                        new = True
                        yield epoch, values.get(A_PLUS), values.get(A_MINUS)
                except OSError:
                    continue
            if not new:
                return

    # -- loop -------------------------------------------------------------------------------
    def on_reading(self, reading, epoch, extras):
        """Book the reading (the CSV replay books it instead while it runs)."""
        if epoch is None or self.replaying:
            return
        values = reading.values
        imp = values.get(A_PLUS)
        if imp is None:
            return
        if self.usage.add(epoch, imp + self.offset, values.get(A_MINUS)):
            self._dirty = True

    def poll(self, now_ms=None):
        """A slice of replay, or a save when an hour closed."""
        if not self._ready:
            if self._fs() is None or not self.start():
                return
        if self.replaying:
            self._replay_slice()
            return
        if self._dirty:
            self.save()

    def _replay_slice(self):
        ticks = self._ticks
        t0 = ticks() if ticks is not None else None
        add = self.usage.add
        n = 0
        for epoch, imp, exp in self._replay:
            add(epoch, imp, exp)
            n += 1
            if n >= _ROWS_PER_POLL or (t0 is not None and ticks_diff(ticks(), t0) >= _SLICE_MS):
                self.replayed += n
                return
        self.replayed += n
        self.replaying = False
        self._replay = None
        self.save()

    def save(self):
        """Write the summary to the slot without the newest good copy. Never raises."""
        fs = self._fs()
        if fs is None or not self._ready:
            return False
        slot = 1 if self._good == 0 else 0
        data = self.usage.to_pieces()
        try:
            write_private(fs, self._path(slot), data)
        except OSError as exc:
            self.save_errors += 1
            self.state.last_errors["usage"] = ("save failed: %s" % exc)[:80]
            return False
        self._good = slot
        self._dirty = False
        self.saves += 1
        return True
