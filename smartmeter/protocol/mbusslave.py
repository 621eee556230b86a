# SPDX-License-Identifier: MIT
"""The M-Bus slave side of the link: which received frames must be acknowledged with ``E5``.

Netz OOE's AMIS meters (Siemens TD-351x) are M-Bus masters on their optical interface: about
once a minute they send SND_NKE (short frame ``10 40 F0 30 16``), then an SND_UD long frame
(C = 53/73) every second, and each must be answered with the single character ``E5`` or the
meter repeats the frame and falls silent. So the reader, as the slave, acknowledges:

* SND_NKE (short frame, C = 0x40) and
* SND_UD (long frame, C = 0x53 or 0x73, FCB either way)

when the frame's checksum and stop byte are right and it is addressed to a station (A is not
0xFE/0xFF: broadcasts are never answered - the push-only DLMS meters of Netz NOE and TINETZ send
to 0xFF, so they never get an ``E5``). The app writes the ``E5`` on the UART's TX pin
(``PIN_METER_TX``); without one it shows that AMIS needs the TX line.

This scanner runs beside the transport reader on the same bytes (the reader hands telegrams to
the decoder and ignores short frames); it allocates one buffer of ``_CAP`` bytes once.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


ACK = b"\xe5"
SND_NKE = const(0x40)
_CAP = const(300)  # one long frame is at most 4 + 255 + 2 = 261 bytes
_SHORT = const(0x10)
_LONG = const(0x68)
_STOP = const(0x16)


class MbusSlave:
    """Count the frames that want an ``E5``.

    :ivar link_frames: valid frames that wanted an acknowledgement (SND_NKE + SND_UD)
    :ivar nke: SND_NKE frames among them; :ivar last_address: A field of the last one
    """

    def __init__(self):
        self._buf = bytearray(_CAP)
        self._mv = memoryview(self._buf)
        self._n = 0
        self.link_frames = 0
        self.nke = 0
        self.last_address = None

    def reset(self):
        """Forget buffered bytes (after a line-setting change)."""
        self._n = 0

    def feed(self, data):
        """Scan ``data``; returns how many ``E5`` acknowledgements are due now."""
        k = len(data)
        acks = 0
        i = 0
        src = memoryview(data) if k else None
        while i < k:
            room = _CAP - self._n
            m = k - i if k - i < room else room
            self._mv[self._n : self._n + m] = src[i : i + m]
            self._n += m
            i += m
            acks += self._scan()
            if self._n >= _CAP:  # a full buffer without a frame: drop the oldest byte
                self._mv[0 : _CAP - 1] = self._mv[1:_CAP]
                self._n = _CAP - 1
        return acks

    def _scan(self):
        buf = self._buf
        n = self._n
        pos = 0
        acks = 0
        while pos < n:
            b = buf[pos]
            if b not in (_SHORT, _LONG):
                pos += 1
                continue
            if b == _SHORT:
                if n - pos < 5:
                    break
                c = buf[pos + 1]
                a = buf[pos + 2]
                if buf[pos + 4] == _STOP and (c + a) & 0xFF == buf[pos + 3]:
                    if c == SND_NKE and a < 0xFE:
                        acks += 1
                        self.nke += 1
                        self.link_frames += 1
                        self.last_address = a
                    pos += 5
                    continue
                pos += 1
                continue
            if n - pos < 4:
                break
            ln = buf[pos + 1]
            if buf[pos + 3] != _LONG or buf[pos + 2] != ln or ln < 3:
                pos += 1
                continue
            end = pos + ln + 6
            if end > n:
                if ln + 6 > _CAP:
                    pos += 1
                    continue
                break
            cs = sum(self._mv[pos + 4 : pos + 4 + ln]) & 0xFF
            if buf[end - 1] != _STOP or cs != buf[end - 2]:
                pos += 1
                continue
            c = buf[pos + 4]
            a = buf[pos + 5]
            if (c & 0xDF) == 0x53 and a < 0xFE:
                acks += 1
                self.link_frames += 1
                self.last_address = a
            pos = end
        if pos:
            rest = n - pos
            if rest > 0:
                self._mv[0:rest] = self._mv[pos:n]
            self._n = rest if rest > 0 else 0
        return acks
