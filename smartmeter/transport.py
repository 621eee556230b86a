# SPDX-License-Identifier: MIT
"""Transport reader: a byte stream in, reassembled application payloads (telegrams) out.

Two framings, recognised by content (never by fixed offsets and never by idle gaps):

* wired M-Bus long frames ``68 L L 68 | C | A | CI | [01 67] | data | CS | 16`` with the CI
  segment sequence (low nibble = segment number, 0x10 = last segment) and the Sagemcom T210-D
  quirk (``68 01 01 68`` for a 257-byte body: L < 3 is taken as L + 256);
* HDLC (IEC 62056-46) frames ``7E | A0 LL | dst | src | ctrl | HCS | [E6 E7 00] | info | FCS | 7E``
  with HDLC segmentation and DLMS General Block Transfer (``E0 ctrl blk(2) ack(2) len``).

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


from array import array

from .errors import FrameError

_RAW_CAP = const(1024)
_PAYLOAD_CAP = const(2048)
_HDLC_MAX = const(510)  # largest HDLC frame-length field accepted (2 * (510 + 2) <= _RAW_CAP)
_MBUS_START = const(0x68)
_MBUS_STOP = const(0x16)
_FLAG = const(0x7E)
_GBT = const(0xE0)
_FRAMING = const(0)
_CHECKSUM = const(1)
_OVERFLOW = const(2)
_NONE = const(0)
_MBUS = const(1)
_HDLC = const(2)

RAW_CAPACITY = _RAW_CAP
PAYLOAD_CAPACITY = _PAYLOAD_CAP
HDLC_MAX_LEN = _HDLC_MAX


def _make_table():
    table = array("H", bytes(512))
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE = _make_table()


def crc16_x25_py(data, crc=0):
    """CRC-16/X.25 (HDLC FCS): reflected poly 0x1021, init 0xFFFF, final XOR 0xFFFF.

    Table-driven; this is what runs on the device. :func:`crc16_x25` is the same function,
    or a C-speed equivalent where the interpreter has one (CPython).

    :param data: bytes-like
    :param crc: a previous result, to continue over more data:
        ``crc16_x25(b, crc16_x25(a)) == crc16_x25(a + b)``
    :returns: the CRC as an int; it goes on the wire little-endian
    """
    c = crc ^ 0xFFFF
    t = _CRC_TABLE
    for b in data:
        c = (c >> 8) ^ t[(c ^ b) & 0xFF]
    return c ^ 0xFFFF


crc16_x25 = crc16_x25_py
try:  # CPython: a reflected CRC is the plain CCITT CRC (binascii.crc_hqx) over bit-reversed bytes
    from binascii import crc_hqx as _crc_hqx

    _REV = bytes(int("{:08b}".format(_i)[::-1], 2) for _i in range(256))
    _REV.translate(_REV)  # AttributeError where bytes has no translate

    def _crc16_x25_c(data, crc=0):
        c = _crc_hqx(bytes(data).translate(_REV), _rev16(crc ^ 0xFFFF))
        return _rev16(c) ^ 0xFFFF

    def _rev16(v):
        return (_REV[v & 0xFF] << 8) | _REV[v >> 8]

    crc16_x25 = _crc16_x25_c
except (ImportError, AttributeError):  # MicroPython/CircuitPython: the table above
    pass


class FrameReader:
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
        if n + k <= _RAW_CAP:
            self._mv[n : n + k] = data
            self._n = n + k
            if self._n > self.buffer_high_water:
                self.buffer_high_water = self._n
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
        mb = self._mbus_on
        hd = self._hdlc_on
        p68 = n if not mb else -1
        p7e = n if not hd else -1
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

    # -- M-Bus ---------------------------------------------------------------------------------

    def _mbus(self, s, n):
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
        if cs + 2 > n:
            return self._wait(cs + 2)
        if buf[cs + 1] != _MBUS_STOP:
            return self._reject(s, _FRAMING, "M-Bus stop byte missing")
        if sum(self._mv[s + 4 : cs]) & 0xFF != buf[cs]:
            return self._reject(s, _CHECKSUM, "M-Bus checksum mismatch")
        self.frames_ok += 1
        self._pos = cs + 2
        self._mbus_segment(s + 6, cs)
        return cs + 2

    def _mbus_segment(self, c, end):
        buf = self._buf
        ci = buf[c]
        d = c + 1
        if ci & 0xE0:
            self._fail(_FRAMING, "M-Bus CI is not a DLMS segment")
            return
        seg = ci & 0x0F
        has_tsap = end - d >= 2 and buf[d] == 0x01 and buf[d + 1] == 0x67
        if seg == 0:
            if self._owner == _MBUS:
                self._abort("M-Bus segment out of sequence")
            elif self._owner != _NONE:
                self._abort("Telegram interrupted by an M-Bus frame")
            self._tsap = has_tsap
            if has_tsap:
                d += 2
            if ci & 0x10:  # single-frame telegram: deliver straight from the raw buffer
                self._deliver(self._mv[d:end], "mbus")
                return
            self._owner = _MBUS
            self._seq = 1
            self._plen = 0
            self._append(self._mv, d, end)
            return
        if self._owner != _MBUS or seg != self._seq:
            self._abort("M-Bus segment out of sequence")
            return
        if self._tsap:
            if not has_tsap:
                self._abort("M-Bus segment header differs")
                return
            d += 2
        self._append(self._mv, d, end)
        self._seq = seg + 1
        if ci & 0x10:
            drop = self._drop
            plen = self._plen
            self._clear()
            if not drop:
                self._deliver(self._pmv[:plen], "mbus")

    # -- HDLC ----------------------------------------------------------------------------------

    def _hdlc(self, s, n):
        buf = self._buf
        if n - s < 2:
            return self._wait(s + 2)
        f = buf[s + 1]
        if f & 0xF0 != 0xA0:
            if f != _FLAG:  # 7E 7E is an idle/closing flag, not garbage
                self.bytes_skipped += 1
            return s + 1
        if n - s < 3:
            return self._wait(s + 3)
        flen = ((f & 0x07) << 8) | buf[s + 2]
        if flen < 7 or flen > _HDLC_MAX:
            return self._reject(s, _FRAMING, "HDLC frame length out of range")
        # two variable-length addresses (1..4 bytes each, the last byte has bit 0 set)
        j = s + 3
        for _ in range(2):
            k = j
            while True:
                if k >= n:
                    return self._wait(k + 1)
                if k - j >= 4:
                    return self._reject(s, _FRAMING, "HDLC address field invalid")
                k += 1
                if buf[k - 1] & 1:
                    break
            j = k
        close = s + 1 + flen
        if j + 3 > close:  # ctrl + HCS must fit in the frame
            return self._reject(s, _FRAMING, "HDLC frame length out of range")
        if j + 3 > n:
            return self._wait(j + 3)
        if crc16_x25(self._mv[s + 1 : j + 1]) != buf[j + 1] | (buf[j + 2] << 8):
            return self._reject(s, _CHECKSUM, "HDLC HCS mismatch")
        if close >= n:
            return self._wait(close + 1)
        if buf[close] != _FLAG:
            return self._reject(s, _FRAMING, "HDLC closing flag missing")
        info = j + 3
        if close > info:  # an information field follows the HCS: check the FCS
            if close - info < 2:
                return self._reject(s, _FRAMING, "HDLC frame length out of range")
            if crc16_x25(self._mv[s + 1 : close - 2]) != buf[close - 2] | (buf[close - 1] << 8):
                return self._reject(s, _CHECKSUM, "HDLC FCS mismatch")
        self.frames_ok += 1
        self._pos = close  # the closing flag may be the next frame's opening flag
        if close - 2 > info:
            self._hdlc_info(info, close - 2, f & 0x08, buf[j])
        return close

    def _hdlc_info(self, a, b, segmented, ctrl):
        buf = self._buf
        if self._owner == _MBUS:
            self._abort("Telegram interrupted by an HDLC frame")
        llc = b - a >= 3 and buf[a] == 0xE6 and buf[a + 1] & 0xFE == 0xE6 and buf[a + 2] == 0
        ns = -1 if ctrl & 1 else (ctrl >> 1) & 7  # I-frames number their segments: N(S)
        if self._hskip:  # the rest of a message whose segment went missing
            if not llc:
                self._hskip = bool(segmented)
                return
            self._hskip = False
        if self._hseg:
            if llc:  # a new message although the last one was not finished
                self._abort("HDLC segment out of sequence")
            elif ns >= 0 and ns != (self._ns + 1) & 7:
                self._abort("HDLC segment out of sequence")
                self._hskip = bool(segmented)
                return
        self._ns = ns
        if not self._hseg:
            if llc:
                a += 3
            if not segmented:
                self._message(self._mv, a, b, False)
                return
            self._owner = _HDLC
            self._hseg = True
            self._mstart = self._plen
        self._append(self._mv, a, b)
        if not segmented:
            self._hseg = False
            if self._drop:  # overflowed: the message was not kept, drop the whole telegram
                self._clear()
                return
            self._message(self._pmv, self._mstart, self._plen, True)

    def _message(self, src, a, b, in_payload):
        """One complete HDLC message (LLC removed): a GBT block or a whole APDU."""
        if a >= b:  # nothing but an LLC: no telegram
            if not self._gbt:
                self._clear()
            return
        if src[a] != _GBT:
            if self._gbt:
                self._abort("GBT transfer interrupted")
                if in_payload:  # the message was copied behind the aborted blocks: move it
                    self._pmv[0 : b - a] = self._pmv[a:b]
                    a, b = 0, b - a
            drop = self._drop
            self._clear()
            if not drop:
                self._deliver(src[a:b], "hdlc")
            return
        if b - a < 7:
            self._abort("GBT block header truncated")
            return
        ctrl = src[a + 1]
        blk = (src[a + 2] << 8) | src[a + 3]
        ln = src[a + 6]
        h = 7
        if ln == 0x81 and b - a >= 8:
            ln = src[a + 7]
            h = 8
        elif ln == 0x82 and b - a >= 9:
            ln = (src[a + 7] << 8) | src[a + 8]
            h = 9
        elif ln >= 0x80:
            self._abort("GBT block length invalid")
            return
        if b - a - h != ln:
            self._abort("GBT block length mismatch")
            return
        if blk == 1:
            if self._gbt:
                self._abort("GBT block out of sequence")
        elif not self._gbt or blk != self._gnext:
            self._abort("GBT block out of sequence")
            return
        if blk == 1:
            base = 0
            if not in_payload:
                self._plen = 0
        else:
            base = a if in_payload else self._plen
        if in_payload:  # drop the block header in place
            if not self._drop:
                self._pmv[base : base + ln] = self._pmv[a + h : b]
                self._plen = base + ln
        else:
            self._append(src, a + h, b)
        self._owner = _HDLC
        self._gbt = True
        self._gnext = blk + 1
        if ctrl & 0x80:
            drop = self._drop
            plen = self._plen
            self._clear()
            if not drop:
                self._deliver(self._pmv[:plen], "hdlc")
