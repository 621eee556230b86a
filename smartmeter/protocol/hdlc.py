# SPDX-License-Identifier: MIT
"""HDLC (IEC 62056-46) framing for :class:`~smartmeter.protocol.transport.FrameReader`; CRC-16.

The CRC is CRC-16/X.25.

Frames ``7E | A0 LL | dst | src | ctrl | HCS | [E6 E7 00] | info | FCS | 7E`` with HDLC
segmentation and DLMS General Block Transfer (``E0 ctrl blk(2) ack(2) len``). :class:`HdlcFraming`
is a mixin: it holds no state of its own and works on the raw and payload buffers, counters and
reassembly state of the :class:`~smartmeter.protocol.transport.FrameReader` it is mixed into.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from array import array

# the same values as in transport.py (const names are module-private on MicroPython)
_HDLC_MAX = const(510)  # largest HDLC frame-length field accepted (2 * (510 + 2) <= raw buffer)
_FLAG = const(0x7E)
_GBT = const(0xE0)
_FRAMING = const(0)
_CHECKSUM = const(1)
_MBUS = const(1)
_HDLC = const(2)

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
        r = _REV  # 16-bit reversal inlined: two calls cost ~0.1 us of a 0.5 us HCS check
        c = crc ^ 0xFFFF
        c = _crc_hqx(bytes(data).translate(r), (r[c & 0xFF] << 8) | r[c >> 8])
        return ((r[c & 0xFF] << 8) | r[c >> 8]) ^ 0xFFFF

    crc16_x25 = _crc16_x25_c
except (ImportError, AttributeError):  # MicroPython/CircuitPython: the table above
    pass


class HdlcFraming:
    """HDLC frame checks, segment reassembly and GBT (a mixin of the transport FrameReader)."""

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
                self.bad_bodies += 1
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
            self._finish("hdlc")
