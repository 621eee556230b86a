# SPDX-License-Identifier: MIT
"""Line settings: which baud rate and parity the meter's UART speaks, found by trying.

Austrian meters use four line settings on their customer interface (``LINES``). With
``METER_TRANSPORT = "auto"`` (and no ``METER_BAUD``/``METER_PARITY``) the app tries them in turn:
each one for its dwell time (longer than the slowest meter's push interval plus one telegram;
on 9600 8E1 longer than the minute between a silent AMIS meter's SND_NKE offers), until
the line is proven - a telegram decoded, two checksum-valid transport frames (the key may be
wrong, but the line is right), or an M-Bus frame that wants an acknowledgement (a silent AMIS
meter still sends its SND_NKE once a minute; the reader counts them in ``acks_total``). Then it
stays; after ``SILENCE_MS`` without any of
those it starts searching again. The framing (M-Bus, HDLC, raw) is always found from the bytes.

Pure logic: the app feeds it a proof counter and the time, and applies the setting it asks for
through the hardware's ``set_line(baudrate, parity)``.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


DWELL_MS = const(13_000)  # > a 10 s push interval + one 2400-baud telegram
AMIS_DWELL_MS = const(61_000)  # a silent AMIS meter offers the link (SND_NKE) once a minute
# (name, baudrate, parity, what uses it, reader transport, dwell ms). Unframed GCM bursts are
# hunted only on 115200 8N1 (transport "raw"): framed meters carry the same envelope inside
# their frames.
LINES = (
    ("2400 8E1", 2400, "even", "M-Bus (Netz NOE, TINETZ, Salzburg, VKW, IKB)", "auto", DWELL_MS),
    ("9600 8N1", 9600, "none", "HDLC (Wiener Netze, KNG, Burgenland, E450)", "auto", DWELL_MS),
    ("9600 8E1", 9600, "even", "AMIS M-Bus (Netz OOE)", "auto", AMIS_DWELL_MS),
    ("115200 8N1", 115200, "none", "raw P1 (Steiermark T210-D-r)", "raw", DWELL_MS),
)
# METER_TRANSPORT -> (baudrate, parity, reader transport) when it fixes the line
FIXED = {
    "mbus": (2400, "even", "mbus"),
    "hdlc": (9600, "none", "hdlc"),
    "amis": (9600, "even", "mbus"),
    "raw": (115200, "none", "raw"),
}
SILENCE_MS = const(300_000)  # nothing for 5 minutes: the meter or its line changed, search again
_FRAMES_PROOF = const(2)  # checksum-valid frames on one setting that prove it without a decode


def line_name(baudrate, parity):
    """``"9600 8E1"`` for (9600, "even")."""
    return "%d 8%s1" % (baudrate, {"even": "E", "odd": "O"}.get(parity, "N"))


class LineSearch:
    """Try the line settings in turn until one is proven, keep it, search again after silence.

    :param start_ms: ticks now; :param ticks_diff: wrap-safe difference
    :param first: index into ``LINES`` to start with
    :ivar index: the setting in use; :ivar searching: True until one is proven
    :ivar found_after_ms: how long the last search took (None while searching)
    :ivar switches: settings tried (counted); :ivar searches: searches started
    """

    def __init__(self, start_ms, ticks_diff, first=0, dwell_ms=None, silence_ms=SILENCE_MS):
        self._diff = ticks_diff
        self.dwell_ms = dwell_ms  # None: each setting's own
        self.silence_ms = silence_ms
        self.index = first % len(LINES)
        self.searching = True
        self.found_after_ms = None
        self.switches = 0
        self.searches = 1
        self._since = start_ms  # when the current setting was applied
        self._search_start = start_ms
        self._last_proof = start_ms
        self._decoded = 0  # the counters when the current setting was applied
        self._frames = 0
        self._link = 0

    @property
    def name(self):
        return LINES[self.index][0]

    @property
    def setting(self):
        """``(baudrate, parity, reader transport)`` of the setting in use."""
        line = LINES[self.index]
        return line[1], line[2], line[4]

    def poll(self, now, decoded, frames, link):
        """Look at the counters; returns the index of a setting to apply now, or None.

        :param decoded: telegrams decoded so far; :param frames: checksum-valid frames so far;
            :param link: M-Bus frames that wanted an acknowledgement so far (all monotonic)
        """
        proven = (
            decoded > self._decoded or frames - self._frames >= _FRAMES_PROOF or link > self._link
        )
        if self.searching:
            if proven:
                self.searching = False
                self.found_after_ms = self._diff(now, self._search_start)
                self._last_proof = now
                self._rebase(decoded, frames, link)
                return None
            dwell = self.dwell_ms or LINES[self.index][5]
            if self._diff(now, self._since) >= dwell:
                return self._next(now, decoded, frames, link)
            return None
        if decoded > self._decoded or frames > self._frames or link > self._link:
            self._last_proof = now
            self._rebase(decoded, frames, link)
        elif self._diff(now, self._last_proof) >= self.silence_ms:
            self.searching = True
            self.searches += 1
            self.found_after_ms = None
            self._search_start = now
            return self._next(now, decoded, frames, link)
        return None

    def _rebase(self, decoded, frames, link):
        self._decoded, self._frames, self._link = decoded, frames, link

    def _next(self, now, decoded, frames, link):
        self.index = (self.index + 1) % len(LINES)
        self.switches += 1
        self._since = now
        self._rebase(decoded, frames, link)
        return self.index
