# SPDX-License-Identifier: MIT
"""Transport reader: a byte stream in, reassembled application payloads (telegrams) out.

Two framings, recognised by content (never by fixed offsets and never by idle gaps):

* wired M-Bus long frames ``68 L L 68 | C | A | CI | [01 67] | data | CS | 16`` with the CI
  segment sequence (low nibble = segment number, 0x10 = last segment) and the Sagemcom T210-D
  quirk (``68 01 01 68`` for a 257-byte body: L < 3 is taken as L + 256);
* HDLC (IEC 62056-46) frames ``7E | A0 LL | dst | src | ctrl | HCS | [E6 E7 00] | info | FCS | 7E``
  with HDLC segmentation and DLMS General Block Transfer (``E0 ctrl blk(2) ack(2) len``); that
  framing and CRC-16/X.25 live in :mod:`smartmeter.protocol.hdlc` (re-exported here).

The TSAP pair ``01 67`` that Netz NÖ, TINETZ and VKW meters put after the CI is removed when
the first segment carries it (and then every later segment of that telegram must carry it too);
a meter that sends none has its data passed on whole.

HDLC segments sent as I-frames are checked by N(S); UI frames (control 0x13, all real captures)
carry no sequence number, so a lost middle UI segment shows only as a short payload, which the
decoder's DLMS length check rejects. The LLC ``E6 E7 00`` is removed where present (GBT blocks
after the first carry none). On a bad frame the reader skips one byte past the start byte and
hunts again; a frame that began inside the rejected one is still found. A closing flag may also
be the next frame's opening flag.

Memory: one raw buffer of ``RAW_CAPACITY`` bytes and one payload buffer of ``PAYLOAD_CAPACITY``
bytes, both allocated once. The raw buffer holds at least two of the largest frames accepted
(M-Bus 266 bytes incl. the T210-D 263-byte frame; HDLC frames whose length field is at most
``HDLC_MAX_LEN`` = 510, i.e. 512 bytes with flags), so a real frame that starts inside a
rejected candidate is still complete in the buffer when the candidate is rejected.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from .errors import FrameError
from .hdlc import HDLC_MAX_LEN, HdlcFraming, crc16_x25, crc16_x25_py

__all__ = [
    "FrameReader",
    "HDLC_MAX_LEN",
    "PAYLOAD_CAPACITY",
    "RAW_CAPACITY",
    "crc16_x25",
    "crc16_x25_py",
]

_RAW_CAP = const(1024)  # holds two of the largest HDLC frames: 2 * (HDLC_MAX_LEN + 2)
_PAYLOAD_CAP = const(2048)
_MBUS_START = const(0x68)
_MBUS_STOP = const(0x16)
_FRAMING = const(0)  # error kinds; hdlc.py uses the same values
_CHECKSUM = const(1)
_OVERFLOW = const(2)
_NONE = const(0)
_MBUS = const(1)  # reassembly owners; hdlc.py uses the same values

RAW_CAPACITY = _RAW_CAP
PAYLOAD_CAPACITY = _PAYLOAD_CAP

# The M-Bus checksum is the byte sum mod 256: ``_csum(v, 0) & 0xFF`` for up to 256 bytes.
_csum = sum  # MicroPython/CircuitPython: sum() over a memoryview runs in C
try:  # CPython: Adler-32 started at 0 has the byte sum mod 65521 in its low half, exact for
    # 256 bytes (255 * 256 < 65521); 0.2 us for a 250-byte body where sum() takes 2 us
    from zlib import adler32 as _csum
except ImportError:
    pass


class FrameReader(HdlcFraming):
    """Bounded, resynchronising reader for M-Bus and HDLC frames.

    :param on_telegram: ``on_telegram(payload, transport_name)``, called synchronously with a
        memoryview over one reassembled application payload (valid only during the call) and
        ``"mbus"`` or ``"hdlc"``. It must not call :meth:`feed` or :meth:`reset`.
    :param transport: ``"auto"`` (hunt for both start bytes), ``"mbus"`` or ``"hdlc"``
    :param on_error: optional ``on_error(exc)`` with a :class:`FrameError` for each discarded
        frame or partial telegram (not for each garbage byte)
    :raises ValueError: for an unknown transport name

    Counters (plain ints, monotonic; :meth:`reset` keeps them): ``bytes_in``, ``bytes_skipped``
    (garbage and rejected start bytes; idle HDLC flags ``7E 7E`` are not counted), ``frames_ok``,
    ``checksum_errors``, ``framing_errors``, ``telegrams``, ``overflows``, ``buffer_high_water``;
    ``last_error`` is the last FrameError or None.
    """

    def __init__(self, on_telegram, transport="auto", on_error=None):
        if transport not in ("auto", "mbus", "hdlc"):
            raise ValueError("transport must be auto, mbus or hdlc")
        self.on_telegram = on_telegram
        self.on_error = on_error
        self._mbus_on = transport != "hdlc"
        self._hdlc_on = transport != "mbus"
        self._buf = bytearray(_RAW_CAP)
        self._mv = memoryview(self._buf)
        self._pay = bytearray(_PAYLOAD_CAP)
        self._pmv = memoryview(self._pay)
        self.bytes_in = 0
        self.bytes_skipped = 0
        self.frames_ok = 0
        self.checksum_errors = 0
        self.framing_errors = 0
        self.telegrams = 0
        self.overflows = 0
        self.buffer_high_water = 0
        self.last_error = None
        self._n = 0
        self._pos = 0
        self._need = 0
        self._clear()

    @property
    def buffered(self):
        """Bytes waiting in the raw buffer (an incomplete frame or candidate)."""
        return self._n

    def reset(self):
        """Drop buffered bytes and any partial telegram (counters are kept)."""
        self._n = 0
        self._pos = 0
        self._need = 0
        self._clear()

    def feed(self, data):
        """Feed any number of bytes; callbacks fire synchronously for each complete telegram.

        :param data: bytes, bytearray or memoryview of any length
        """
        k = len(data)
        if not k:
            return
        self.bytes_in += k
        n = self._n
        m = n + k
        if m <= _RAW_CAP:
            self._mv[n:m] = data
            self._n = m
            if m > self.buffer_high_water:
                self.buffer_high_water = m
            self._run()
            return
        src = memoryview(data)
        i = 0
        while i < k:
            n = self._n
            m = _RAW_CAP - n
            if m > k - i:
                m = k - i
            if m <= 0:  # cannot happen (a pending frame is < _RAW_CAP / 2): never spin
                self.bytes_skipped += n
                self._n = n = 0
                continue
            self._mv[n : n + m] = src[i : i + m]
            self._n = n + m
            if self._n > self.buffer_high_water:
                self.buffer_high_water = self._n
            i += m
            self._run()

    # -- hunting -------------------------------------------------------------------------------

    def _run(self):
        buf = self._buf
        n = self._n
        if n < self._need:  # the pending frame at 0 is still incomplete: nothing to do
            return
        self._need = 0
        pos = self._pos = 0
        p68 = -1 if self._mbus_on else n
        p7e = -1 if self._hdlc_on else n
        try:
            while pos < n:
                if p68 < pos:
                    p68 = buf.find(b"\x68", pos, n)  # bytearray.find: CPython, MP 1.27, CP
                    if p68 < 0:
                        p68 = n
                if p7e < pos:
                    p7e = buf.find(b"\x7e", pos, n)
                    if p7e < 0:
                        p7e = n
                s = p68 if p68 < p7e else p7e
                if s > pos:
                    self.bytes_skipped += s - pos
                    pos = self._pos = s
                if s >= n:
                    break
                r = self._mbus(s, n) if s == p68 else self._hdlc(s, n)
                if r < 0:  # incomplete: wait for more bytes
                    break
                pos = self._pos = r
        finally:
            pos = self._pos
            n = self._n
            if pos >= n:
                self._n = 0
            elif pos:
                self._mv[0 : n - pos] = self._mv[pos:n]
                self._n = n - pos
            self._pos = 0
            self._need = self._need - pos if self._need > pos else 0

    def _wait(self, end):
        # the candidate at self._pos needs the raw buffer filled up to index ``end``
        self._need = end
        return -1

    def _reject(self, s, kind, msg):
        self._pos = s + 1
        self.bytes_skipped += 1
        self._fail(kind, msg)
        return s + 1

    def _fail(self, kind, msg):
        if kind == _CHECKSUM:
            self.checksum_errors += 1
        elif kind == _OVERFLOW:
            self.overflows += 1
        else:
            self.framing_errors += 1
        exc = FrameError(msg)
        self.last_error = exc
        if self.on_error is not None:
            self.on_error(exc)

    # -- reassembly state ----------------------------------------------------------------------

    def _clear(self):
        self._owner = _NONE  # which transport the partial telegram in the payload buffer is from
        self._plen = 0
        self._drop = False  # overflowed: swallow the rest of this telegram
        self._seq = 0  # M-Bus: next segment number
        self._tsap = False  # M-Bus: the first segment carried 01 67
        self._hseg = False  # HDLC: inside a segmented message
        self._hskip = False  # HDLC: dropping the rest of a broken segmented message
        self._ns = 0  # HDLC: N(S) of the last I-frame segment
        self._mstart = 0  # HDLC: payload offset where the current message starts
        self._gbt = False  # inside a General Block Transfer
        self._gnext = 0  # GBT: next block number

    def _abort(self, msg):
        self._clear()
        self._fail(_FRAMING, msg)

    def _append(self, src, a, b):
        if self._drop:
            return
        p = self._plen
        k = b - a
        if p + k > _PAYLOAD_CAP:
            self._drop = True
            self._fail(_OVERFLOW, "Telegram longer than the payload buffer")
            return
        self._pmv[p : p + k] = src[a:b]
        self._plen = p + k

    def _deliver(self, view, name):
        self.telegrams += 1
        self.on_telegram(view, name)

    def _finish(self, name):
        # the last segment or block is in: deliver the telegram unless it overflowed
        drop = self._drop
        plen = self._plen
        self._clear()
        if not drop:
            self.telegrams += 1
            self.on_telegram(self._pmv[:plen], name)

    # -- M-Bus ---------------------------------------------------------------------------------

    def _mbus(self, s, n):
        # one method for the frame and its segment: a call and its lookups cost ~0.15 us a frame
        buf = self._buf
        if n - s < 4:
            return self._wait(s + 4)
        if buf[s + 3] != _MBUS_START:  # not a frame start: plain garbage
            self.bytes_skipped += 1
            return s + 1
        ln = buf[s + 1]
        if ln != buf[s + 2]:
            return self._reject(s, _FRAMING, "M-Bus length fields differ")
        if ln < 3:  # shorter than C A CI: the T210-D's L overflowed mod 256
            ln += 256
        cs = s + 4 + ln
        end = cs + 2
        if end > n:
            return self._wait(end)
        if buf[cs + 1] != _MBUS_STOP:
            return self._reject(s, _FRAMING, "M-Bus stop byte missing")
        mv = self._mv
        v = mv[s + 4 : cs]  # the high bits of _csum drop out of & 0xFF (65536 = 0 mod 256)
        c = _csum(v, 0) if ln <= 256 else _csum(v[:256], 0) + _csum(v[256:], 0)
        if c & 0xFF != buf[cs]:
            return self._reject(s, _CHECKSUM, "M-Bus checksum mismatch")
        self.frames_ok += 1
        self._pos = end
        # the segment: CI after C and A, then [01 67], then data up to the checksum
        ci = buf[s + 6]
        d = s + 7
        if ci & 0xE0:
            self._fail(_FRAMING, "M-Bus CI is not a DLMS segment")
            return end
        seg = ci & 0x0F
        has_tsap = cs - d >= 2 and buf[d] == 0x01 and buf[d + 1] == 0x67
        owner = self._owner
        if seg == 0:
            if owner == _MBUS:
                self._abort("M-Bus segment out of sequence")
            elif owner != _NONE:
                self._abort("Telegram interrupted by an M-Bus frame")
            self._tsap = has_tsap
            if has_tsap:
                d += 2
            if ci & 0x10:  # single-frame telegram: deliver straight from the raw buffer
                self.telegrams += 1
                self.on_telegram(mv[d:cs], "mbus")
                return end
            self._owner = _MBUS
            self._seq = 1
            self._plen = 0
            self._append(mv, d, cs)
            return end
        if owner != _MBUS or seg != self._seq:
            self._abort("M-Bus segment out of sequence")
            return end
        if self._tsap:
            if not has_tsap:
                self._abort("M-Bus segment header differs")
                return end
            d += 2
        self._append(mv, d, cs)
        self._seq = seg + 1
        if ci & 0x10:
            self._finish("mbus")
        return end
