# SPDX-License-Identifier: MIT
"""The settings override file on the SD card (written by the web settings page), power-cut safe.

FAT cannot replace a file atomically (a rename onto an existing name fails), so there are two
files, ``config.OVERRIDE_SLOTS``, written in turn. Each ends with a check line
``# check <sequence> <FNV-1a of everything before it>``. Reading takes the valid file with the
highest sequence; a save always writes the *other* file. A power cut during a save therefore
leaves the previous settings intact: the half-written file fails its check and is ignored.

Reading never raises and never cuts a file short: a file larger than ``config.OVERRIDE_MAX``,
not valid UTF-8 or failing its check is reported (``problems``, naming the file, never a value)
and ignored, and the board boots on ``settings.toml`` alone. Lines that do not parse are
reported one by one; the others still apply.

``fs`` is the filesystem interface of ``datalog.sd`` (``RealFS`` on the board and the PC).
"""

from . import config
from .configvalues import write_private

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_CHECK = b"# check "


def fnv32(data):
    """32-bit FNV-1a of ``data`` (pure Python: no binascii.crc32 needed on the board)."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def seal(text, seq):
    """``text`` (TOML) plus its check line, as bytes."""
    body = text.encode()
    return body + b"# check %d %08x\n" % (seq, fnv32(body))


def unseal(data):
    """``(text, seq)`` of a sealed file; ValueError when the check line is missing or wrong."""
    data = bytes(data)
    if not data.endswith(b"\n"):
        raise ValueError("incomplete")
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    line = data[start:-1]
    if not line.startswith(_CHECK):
        raise ValueError("no check line")
    parts = line[len(_CHECK) :].split(b" ")
    if len(parts) != 2:
        raise ValueError("bad check line")
    seq = int(parts[0])
    if int(parts[1], 16) != fnv32(data[:start]):
        raise ValueError("checksum mismatch")
    return data[:start].decode(), seq


def _read(fs, path):
    """File bytes, None when missing; raises ValueError when larger than OVERRIDE_MAX."""
    try:
        f = fs.open(path, "rb")
    except OSError:
        return None
    try:
        data = f.read(config.OVERRIDE_MAX + 1)
    finally:
        f.close()
    if len(data) > config.OVERRIDE_MAX:
        raise ValueError("is larger than %d KiB" % (config.OVERRIDE_MAX // 1024))
    return bytes(data)


class Loaded:
    """What :func:`load` found: ``values``, ``problems``, ``seq`` (-1: none) and ``path``."""

    def __init__(self):
        self.values = {}
        self.problems = []
        self.seq = -1
        self.path = None
        self.legacy = False


def load(fs):
    """Read the newest valid override file. Never raises (bad files become ``problems``)."""
    out = Loaded()
    best = None
    damaged = []
    for path in config.OVERRIDE_SLOTS:
        try:
            data = _read(fs, path)
            if data is None:
                continue
            text, seq = unseal(data)
        except (ValueError, UnicodeError, MemoryError) as exc:
            damaged.append("%s %s" % (_name(path), _why(exc)))
            continue
        if best is None or seq > best[1]:
            best = (path, seq, text)
    if best is None:
        try:
            data = _read(fs, config.LEGACY_OVERRIDE)
            if data is not None:
                best = (config.LEGACY_OVERRIDE, 0, data.decode())
                out.legacy = True
        except (ValueError, UnicodeError, MemoryError) as exc:
            damaged.append("%s %s" % (_name(config.LEGACY_OVERRIDE), _why(exc)))
        if best is None:
            # nothing usable: every damaged file is worth a line (the board runs on settings.toml)
            for text in damaged:
                out.problems.append("settings file %s: ignored, settings.toml alone applies" % text)
            return out
    # else: a damaged slot next to a good one is a save cut short by a power cut: harmless
    out.path, out.seq, text = best
    values, problems = config.parse_toml(text)
    out.values = values
    for text in problems:
        out.problems.append("settings file %s %s" % (_name(out.path), text))
    return out


def save(fs, values, current=None):
    """Write ``values`` into the slot that does not hold the current settings; sync it.

    :param current: the :class:`Loaded` the values were merged into (default: read now)
    :raises ValueError: when the file would exceed OVERRIDE_MAX (nothing is written)
    :raises OSError: from the card (the previous settings stay valid)
    """
    if current is None:
        current = load(fs)
    seq = current.seq + 1
    data = seal(config.dump_toml(values), seq)
    if len(data) > config.OVERRIDE_MAX:
        raise ValueError("settings would exceed %d KiB" % (config.OVERRIDE_MAX // 1024))
    path = config.OVERRIDE_SLOTS[seq % 2]
    if current.path == path:  # (cannot happen with alternating sequences; be sure anyway)
        path = config.OVERRIDE_SLOTS[(seq + 1) % 2]
    write_private(fs, path, data)
    for old in (config.LEGACY_OVERRIDE,):  # the old place could be served with LOG_DIR = /sd
        try:
            fs.remove(old)
        except OSError:
            pass
    return path


def _name(path):
    return path[path.rfind("/") + 1 :]


def _why(exc):
    if isinstance(exc, UnicodeError):
        return "is not valid UTF-8"
    if isinstance(exc, MemoryError):
        return "does not fit in memory"
    text = str(exc)
    if text.startswith("is "):
        return text
    return "is damaged (%s; a power cut while saving?)" % (text or "unreadable")
