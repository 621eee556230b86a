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

Two more kinds of input:

* wired M-Bus frames of a meter that expects a slave (Netz OÖ AMIS): the SND_NKE short frame
  ``10 40 A CS 16`` and SND_UD long frames whose CI is an OMS long header (``5B``/``72``); the
  latter are delivered whole (C through the last data byte) as transport ``"oms"``. Such a
  meter repeats or stops unless every SND_NKE and SND_UD addressed to it is answered with
  ``E5``: see **Acknowledgements** below;
* unframed general-glo-ciphering bursts (transport ``"raw"``, Sagemcom T210-D-r on P1):
  ``DB 08 <system title> <length> <SC> <FC> ...`` found by the ``DB 08`` header, a plausible
  security byte and the length. There is no checksum: the callback tells the reader whether the
  candidate decoded (see ``on_telegram``); if not, the reader hunts again from the byte after
  its start, so a real burst that began inside a false candidate is still found. Only with
  ``transport="raw"`` (the T210-D-r line setting, 115200 8N1): framed meters carry the same
  ``DB 08`` envelope inside their frames, and a damaged frame must not turn into a raw burst.
  (:func:`smartmeter.protocol.pipeline.decode` tries ``"raw"`` on a capture in which ``"auto"``
  found no frame.)

**Acknowledgements** (M-Bus slave duty): for every valid SND_NKE and SND_UD frame whose address
is not the broadcast ``FF`` the reader counts one due acknowledgement *before* it delivers the
telegram: ``acks_due`` goes up by one and ``on_ack()`` is called if set. The app either sets
``reader.on_ack = lambda: uart.write(b"\xe5")`` (answers at once, within the M-Bus reply window
of ~11 bit times to 330 bit times + 50 ms), or polls after each :meth:`feed`::

    n = reader.take_acks()
    if n:
        uart.write(ACK * n)   # ACK = b"\xe5"

``acks_total`` counts all of them. Push-only meters (Netz NÖ, TINETZ, ...) send to ``FF`` and are
never answered.

Memory: one raw buffer of ``RAW_CAPACITY`` bytes and one payload buffer of ``PAYLOAD_CAPACITY``
bytes, both allocated once. The raw buffer holds at least two of the largest frames accepted
(M-Bus 266 bytes incl. the T210-D 263-byte frame; HDLC frames whose length field is at most
``HDLC_MAX_LEN`` = 510, i.e. 512 bytes with flags; raw bursts of at most ``RAW_MAX_LEN`` =
1024 bytes), so a real frame that starts inside a rejected candidate is still complete in the
buffer when the candidate is rejected.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from .errors import FrameError
from .hdlc import HDLC_MAX_LEN, HdlcFraming, crc16_x25, crc16_x25_py

__all__ = [
    "ACK",
    "FrameReader",
    "HDLC_MAX_LEN",
    "PAYLOAD_CAPACITY",
    "RAW_CAPACITY",
    "RAW_MAX_LEN",
    "TRANSPORTS",
    "crc16_x25",
    "crc16_x25_py",
]

_RAW_CAP = const(2048)  # holds two of the largest raw bursts (and HDLC frames)
_RAW_MAX = const(1024)  # largest unframed GCM burst accepted (T210-D-r: 511 bytes)
_PAYLOAD_CAP = const(2048)
_MBUS_START = const(0x68)
_MBUS_SHORT = const(0x10)
_MBUS_STOP = const(0x16)
_GLO = const(0xDB)
_SND_NKE = const(0x40)
_SND_UD = const(0x53)  # C field with FCB masked out (0x53 / 0x73)
_BROADCAST = const(0xFF)
_FRAMING = const(0)  # error kinds; hdlc.py uses the same values
_CHECKSUM = const(1)
_OVERFLOW = const(2)
_NONE = const(0)
_MBUS = const(1)  # reassembly owners; hdlc.py uses the same values

RAW_CAPACITY = _RAW_CAP
RAW_MAX_LEN = _RAW_MAX
PAYLOAD_CAPACITY = _PAYLOAD_CAP
# The reader's counters (plain int attributes, same names in ``state.Counters``)
READER_COUNTERS = ("bytes_in", "bytes_skipped", "frames_ok", "checksum_errors", "framing_errors")
TRANSPORTS = ("auto", "mbus", "hdlc", "raw")
ACK = b"\xe5"  # the M-Bus single-character acknowledgement

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
        ``"mbus"``, ``"hdlc"``, ``"oms"`` (an OMS SND_UD frame from C on) or ``"raw"``. For
        ``"raw"`` a return value of ``False`` means "this was no telegram" (it did not decode):
        the reader then hunts again from the byte after its start. It must not call
        :meth:`feed` or :meth:`reset`.
    :param transport: ``"auto"`` (M-Bus and HDLC), ``"mbus"``, ``"hdlc"`` or ``"raw"``
        (unframed bursts only) (:data:`TRANSPORTS`)
    :param on_error: optional ``on_error(exc)`` with a :class:`FrameError` for each discarded
        frame or partial telegram (not for each garbage byte)
    :raises ValueError: for an unknown transport name

    Counters (plain ints, monotonic; :meth:`reset` keeps them): ``bytes_in``, ``bytes_skipped``
    (garbage and rejected start bytes; idle HDLC flags ``7E 7E`` are not counted), ``frames_ok``,
    ``checksum_errors``, ``framing_errors``, ``telegrams``, ``overflows``, ``buffer_high_water``,
    ``snd_nke`` (SND_NKE frames seen), ``acks_total``; ``acks_due`` is the number of ``E5``
    acknowledgements owed (see :meth:`take_acks`); ``last_error`` is the last FrameError or None.
    :ivar on_ack: optional ``on_ack()`` called once per acknowledgement owed, at once
    """

    def __init__(self, on_telegram, transport="auto", on_error=None, on_ack=None):
        if transport not in TRANSPORTS:
            raise ValueError("transport must be auto, mbus, hdlc or raw")
        self.on_telegram = on_telegram
        self.on_error = on_error
        self.on_ack = on_ack
        self._mbus_on = transport in ("auto", "mbus")
        self._hdlc_on = transport in ("auto", "hdlc")
        self._raw_on = transport == "raw"
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
        self.snd_nke = 0
        self.bad_bodies = 0  # frames with a valid header whose checksum failed (damaged)
        self.acks_due = 0
        self.acks_total = 0
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

    def set_transport(self, transport):
        """Hunt for another framing from now on (the app's line search: "raw" only on the
        T210-D-r's 115200 8N1); buffered bytes and any partial telegram are dropped."""
        if transport not in TRANSPORTS:
            raise ValueError("transport must be auto, mbus, hdlc or raw")
        self._mbus_on = transport in ("auto", "mbus")
        self._hdlc_on = transport in ("auto", "hdlc")
        self._raw_on = transport == "raw"
        self.reset()

    def take_acks(self):
        """Return the number of ``E5`` acknowledgements owed and clear it (the app sends them)."""
        n = self.acks_due
        self.acks_due = 0
        return n

    def _ack(self):
        self.acks_due += 1
        self.acks_total += 1
        if self.on_ack is not None:
            self.on_ack()

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
        p10 = -1 if self._mbus_on else n
        p7e = -1 if self._hdlc_on else n
        pdb = -1 if self._raw_on else n
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
                if p10 < pos:
                    p10 = buf.find(b"\x10", pos, n)
                    if p10 < 0:
                        p10 = n
                if pdb < pos:
                    pdb = buf.find(b"\xdb", pos, n)
                    if pdb < 0:
                        pdb = n
                s = p68 if p68 < p7e else p7e
                if p10 < s:
                    s = p10
                if pdb < s:
                    s = pdb
                if s > pos:
                    self.bytes_skipped += s - pos
                    pos = self._pos = s
                if s >= n:
                    break
                if s == p68:
                    r = self._mbus(s, n)
                elif s == p7e:
                    r = self._hdlc(s, n)
                elif s == p10:
                    r = self._short(s, n)
                else:
                    r = self._raw(s, n)
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
            self.bad_bodies += 1
            return self._reject(s, _CHECKSUM, "M-Bus checksum mismatch")
        self.frames_ok += 1
        self._pos = end
        # the segment: CI after C and A, then [01 67], then data up to the checksum
        ci = buf[s + 6]
        d = s + 7
        if buf[s + 4] & 0xDF == _SND_UD and buf[s + 5] != _BROADCAST:
            self._ack()  # the meter expects a slave: acknowledge before decoding
        if ci in (0x5B, 0x72):  # OMS long header (AMIS): one frame, one telegram
            self.telegrams += 1
            self.on_telegram(mv[s + 4 : cs], "oms")
            return end
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

    # -- M-Bus short frames (SND_NKE) ----------------------------------------------------------

    def _short(self, s, n):
        buf = self._buf
        if n - s < 5:
            return self._wait(s + 5)
        c = buf[s + 1]
        a = buf[s + 2]
        if (
            buf[s + 4] != _MBUS_STOP
            or (c + a) & 0xFF != buf[s + 3]
            or (c != _SND_NKE and c & 0xDE != 0x5A)  # SND_NKE, REQ_UD1/2 (a master polling)
        ):
            self.bytes_skipped += 1  # plain garbage
            return s + 1
        self.frames_ok += 1
        if c == _SND_NKE:
            self.snd_nke += 1
            if a != _BROADCAST:
                self._ack()
        return s + 5

    # -- unframed general-glo-ciphering bursts -------------------------------------------------

    def _raw(self, s, n):
        buf = self._buf
        if n - s < 2:
            return self._wait(s + 2)
        if buf[s + 1] != 8:
            self.bytes_skipped += 1
            return s + 1
        if n - s < 16:
            return self._wait(s + 16)
        ln = buf[s + 10]
        h = 11
        if ln == 0x81:
            ln = buf[s + 11]
            h = 12
        elif ln == 0x82:
            ln = (buf[s + 11] << 8) | buf[s + 12]
            h = 13
        elif ln >= 0x80:
            self.bytes_skipped += 1
            return s + 1
        sc = buf[s + h]
        if ln < 6 or sc & 0xE0 != 0x20 or sc & 0x0F > 2:
            self.bytes_skipped += 1  # not a plausible burst header: garbage
            return s + 1
        if h + ln > _RAW_MAX:  # say so: a meter with longer bursts needs a bigger buffer
            return self._reject(s, _OVERFLOW, "raw burst longer than %d bytes" % _RAW_MAX)
        end = s + h + ln
        if end > n:
            return self._wait(end)
        self.telegrams += 1
        if self.on_telegram(self._mv[s:end], "raw") is False:
            self.bytes_skipped += 1  # it did not decode: look for a burst inside it
            return s + 1
        self.frames_ok += 1
        return end
