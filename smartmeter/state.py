# SPDX-License-Identifier: MIT
"""The one state object every sink reads: latest reading, history ring, status counters.

Sinks (CSV, display, web, Graphite, MQTT) read from here and never talk to each other. Only the
app loop writes to it. ``problems()`` turns the counters into the plain-language list of what is
wrong ("no signal", "wrong key?", "SD full", ...) that the display banner, the web page and the
serial line all show.

Outputs register themselves: ``state.add_sink(name, PROBLEMS)`` returns the ``SinkStatus``
the output keeps current (state, last error, sent/failed/queued/dropped) and adds its problem
texts and hints to the ones here, so every status surface shows a new output unchanged.
"""

import sys
from array import array

from .protocol.dlms import COUNTERS as DECODER_COUNTERS
from .protocol.transport import READER_COUNTERS

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# one day of per-minute power averages: 2 x 4 bytes x 1440 = 11.5 KiB
_HISTORY_MINUTES = const(1440)
_NO_SIGNAL_MS = const(30_000)  # no telegram for 30 s (meters push every 1-10 s) -> "no signal"

# Problem codes, most important first. Their texts and hints are in one module per language,
# ``problemtexts_<language>.py`` and ``problemhints_<language>.py``: a board keeps only the ones
# it shows (problem_text, problem_hint); an output adds its own codes through ``State.add_sink``.
NO_KEY = "no_key"
CONFIG = "config"
NO_SIGNAL = "no_signal"
NO_FRAMES = "no_frames"
LINE_SEARCH = "line_search"
AMIS_TX = "amis_tx"
WRONG_KEY = "wrong_key"
AUTH_KEY = "auth_key"
TAG = "tag_mismatch"
LAYOUT = "layout"
CLOCK = "clock"
METER_CLOCK = "meter_clock"
SD_MISSING = "sd_missing"
SD_FULL = "sd_full"
SD_ERROR = "sd_error"
NO_WIFI = "no_wifi"
LOGIN_REFUSED = "login_refused"
SENSOR = "sensor"
MEMORY = "memory"
WEB_OFF = "web_off"  # the web server cannot listen (port taken...); it retries
_MEMORY_SHOW_MS = const(600_000)  # "Out of memory" stays listed 10 min after the last one

# Texts of the problems outputs add (``State.add_sink``), of the parts left out for lack of
# memory (``State.leave_out``) and the web port's hint (``add_texts``): code -> {language: (text,
# hint)}, the output's own table kept by reference (text or hint None: the language module's)
_ADDED = {}
# the texts and hints shown so far, language -> {code: text} ("": none): only these stay on the
# heap, the language modules are read for each new one (``_lookup``)
_SHOWN_TEXTS = {}
_SHOWN_HINTS = {}
_UNLOAD = sys.implementation.name in ("circuitpython", "micropython")


class SinkStatus:
    """One output's entry in ``State.sinks``: what every status surface shows of it (as JSON:
    ``web.api.sink_dict``).

    ``state``: "disabled", "pending" (nothing sent yet), "ok", or a failure the output names
    ("error", "unresolved", "auth", ...); failures listed in its PROBLEMS become problems.
    """

    __slots__ = ("name", "state", "error", "sent", "failed", "queued", "dropped", "_codes")

    def __init__(self, name, codes):
        self.name = name
        self.state = "disabled"
        self.error = ""  # last error text (English, never a secret); "" when fine
        self.sent = 0
        self.failed = 0
        self.queued = 0
        self.dropped = 0
        self._codes = codes  # state -> problem code

    def problem(self):
        """The problem code of the current state, or None."""
        return self._codes.get(self.state)


class Counters:
    """Every stage counts. Plain int attributes, so sinks read them without allocation."""

    # Names in display/JSON order. Kept as a tuple so /api/status and the serial line iterate it.
    # Names in display/JSON order: the reader's and the decoder's own counters (one list each,
    # in the protocol modules), then the loop's. /api/status and the serial line iterate it.
    NAMES = (
        READER_COUNTERS
        + DECODER_COUNTERS
        + (
            "uart_overflows",
            "line_switches",
            "acks_sent",
            "ack_errors",
            "csv_rows",
            "csv_errors",
            "csv_lost",
            "csv_no_time",  # readings without a time (no meter time, RTC unset): no row
            "meter_clock_wrong",  # readings whose meter time was wrong (see app._row_time)
            "sd_remounts",
            "http_requests",
            "http_errors",
            "login_failures",  # wrong web passwords checked
            "logins_refused",  # web requests answered 429: too many wrong passwords, not checked
            "display_errors",
            "sensor_errors",
            "sensor_crc_errors",
            "sink_errors",
            "memory_errors",
            "loop_passes",
            "slowest_pass_ms",
            "mem_free_min",
        )
    )

    def __init__(self):
        for name in self.NAMES:
            setattr(self, name, 0)
        self.mem_free_min = -1  # unknown until measured


class History:
    """Per-minute ring buffer of net active power (W, import positive) for the day's curve.

    Preallocated arrays; ``add()`` averages telegrams within a minute. Timestamps are UTC epoch
    minutes (int), so a clock or DST jump cannot reorder the ring. Its reader, the web page's,
    is ``web.api.history_items`` (code a board without the web page does not load).
    """

    def __init__(self, minutes=_HISTORY_MINUTES):
        self.size = minutes
        # each array allocated once at its size from zero bytes (one byte per element): ``[0] *
        # minutes`` would first build a 5.6 KiB list per array (the build's peak heap)
        zeros = memoryview(bytes(minutes))
        self._minute = array("l", zeros)
        self._watts = array("l", zeros)
        self._count = 0  # filled slots
        self._head = 0  # index of the newest slot
        self._acc = 0
        self._acc_n = 0

    def add(self, epoch_s, watts):
        """Add one sample at UTC ``epoch_s`` (int seconds); a ring of size 0 keeps nothing."""
        if not self.size:
            return
        minute = epoch_s // 60
        if self._count and self._minute[self._head] == minute:
            self._acc += watts
            self._acc_n += 1
            self._watts[self._head] = self._acc // self._acc_n
            return
        if self._count and minute < self._minute[self._head]:
            return  # time went backwards: keep the ring ordered
        self._head = (self._head + 1) % self.size if self._count else 0
        self._minute[self._head] = minute
        self._watts[self._head] = watts
        self._acc = watts
        self._acc_n = 1
        if self._count < self.size:
            self._count += 1

    def __len__(self):
        return self._count


class State:
    """Everything the sinks show. Written by the app loop only."""

    def __init__(self, history_minutes=_HISTORY_MINUTES):
        self.latest = None  # Reading
        self.latest_epoch = None  # UTC epoch seconds of the latest reading (meter time)
        self.latest_ticks = None  # clock ticks (ms) when it arrived
        # the day curve of the web page (its only reader): app.build starts with an empty ring
        # and the web part allocates the real one (11.5 KiB), so a board without the web page
        # (not configured, or left out for lack of memory) does not hold it
        self.history = History(history_minutes)
        self.counters = Counters()
        self.temperature = None  # deg C from the HTE501, or None
        self.humidity = None  # %RH, or None
        self.sensor_state = "absent"
        # Network, filled in by the app from the radio view
        self.wifi_connected = False
        self.web_off = False  # the web server could not listen (web.server sets the hint)
        self.wifi_ssid = None
        self.wifi_rssi = None
        self.ip = None
        self.ap_mode = False
        self.ap_ssid = None
        self.ap_password = None
        self.hostname = None
        self.web_password_generated = None  # shown on the system screen only if we generated it
        # ticks of the last web request refused for too many wrong passwords (None: a minute ago)
        self.login_refused_ticks = None
        # SD card
        self.sd_state = "unknown"  # ok | missing | full | error | disabled | unknown
        self.sd_free = None  # bytes
        self.sd_total = None
        self.uploads_deleted = 0  # uploads the log retention deleted to keep logging
        self.upload_deleted = None  # the last one's name
        # Parts: name -> short error text (English); "" when fine
        self.last_errors = {}
        self.sinks = {}  # output name -> SinkStatus, in the order they were built
        self.left_out = []  # off_<part> codes of the parts app.build could not start (low heap)
        self.config_problems = []  # ["METER_KEY: must be 32 hex digits", ...] (never values)
        self.key_set = False
        self.clock_set = False
        self.meter_clock_wrong = False  # the latest reading's meter time was wrong
        self.uptime_s = 0
        self.reset_reason = None
        self.version = None
        self.usage = None  # datalog.usage.Usage: energy per quarter/hour/day/month (usage sink)
        self.prices = None  # outputs.prices.PriceSink when day-ahead prices are on
        # datalog.outlook: cheapest windows, month peaks, the open quarter's demand (for MQTT;
        # kept out of the extras so InfluxDB and Graphite lines do not grow)
        self.ahead = {}
        self.last_stage_error = None  # (stage, message) of the last failed telegram
        # Meter line: "9600 8E1"; fixed (settings) | searching | found; how long the search took
        self.line = None
        self.line_state = "fixed"
        self.line_found_ms = None
        self.meter_tx = False  # the UART has a TX pin for the M-Bus E5 acknowledgement
        self.link_frames = 0  # frames the meter wanted acknowledged (AMIS SND_NKE/SND_UD)
        self.last_stage_ticks = None
        self.memory_error_ticks = None  # clock ticks (ms) of the last MemoryError caught

    def problems(self, now_ticks=None, ticks_diff=None):
        """What is wrong, most important first, as a list of problem codes (``problem_text``)."""
        out = []
        c = self.counters
        if self.config_problems:
            out.append(CONFIG)
        if not self.key_set:
            out.append(NO_KEY)
        out.extend(self.left_out)
        mem = self.memory_error_ticks
        if mem is not None and (
            now_ticks is None or ticks_diff is None or ticks_diff(now_ticks, mem) <= _MEMORY_SHOW_MS
        ):
            out.append(MEMORY)
        stale = self.latest_ticks is None
        if not stale and now_ticks is not None and ticks_diff is not None:
            stale = ticks_diff(now_ticks, self.latest_ticks) > _NO_SIGNAL_MS
        if stale and self.key_set:
            stage = self.last_stage_error[0] if self.last_stage_error else None
            recent = self.last_stage_ticks is not None and (
                now_ticks is None
                or ticks_diff is None
                or ticks_diff(now_ticks, self.last_stage_ticks) <= _NO_SIGNAL_MS
            )
            if recent and stage == "wrong_key":
                out.append(WRONG_KEY)
            elif recent and stage == "tag_mismatch":
                out.append(TAG)
            elif recent and stage == "auth_key_missing":
                out.append(AUTH_KEY)
            elif recent and stage == "layout":
                out.append(LAYOUT)
            elif self.line_state == "searching":
                out.append(LINE_SEARCH)
            elif c.bytes_in and not c.frames_ok:
                out.append(NO_FRAMES)
            else:
                out.append(NO_SIGNAL)
        if self.link_frames and not self.meter_tx:
            out.append(AMIS_TX)
        if self.sd_state == "missing":
            out.append(SD_MISSING)
        elif self.sd_state == "full":
            out.append(SD_FULL)
        elif self.sd_state == "error":
            out.append(SD_ERROR)
        if not self.clock_set:
            out.append(CLOCK)
        if self.meter_clock_wrong:
            out.append(METER_CLOCK)
        if not self.wifi_connected:
            out.append(NO_WIFI)
        if self.login_refused_ticks is not None:
            out.append(LOGIN_REFUSED)
        if self.web_off:
            out.append(WEB_OFF)
        for sink in self.sinks.values():
            code = sink.problem()
            if code is not None:
                out.append(code)
        if self.sensor_state == "error":
            out.append(SENSOR)
        return out

    def leave_out(self, name, label_en, label_de):
        """Part ``name`` did not start for lack of heap: problem ``off_<name>``, worded
        "<label> off: low memory" (labels at most 12 characters for the display)."""
        code = "off_" + name
        add_texts(
            code,
            {
                "en": (label_en + " off: low memory", "Needs a board with PSRAM"),
                "de": (label_de + " aus: wenig RAM", "Board mit PSRAM noetig"),
            },
        )
        if code not in self.left_out:
            if name == "csv":  # the one that loses data: first on the display
                self.left_out.insert(0, code)
            else:
                self.left_out.append(code)
        return code

    def add_sink(self, name, problems=()):
        """Register output ``name``; returns its :class:`SinkStatus` (in ``self.sinks``).

        :param problems: ``((code, states, {"en": (text, hint), "de": (text, hint)}), ...)``:
            while the output is in one of ``states`` the problem ``code`` is listed, with these
            texts (text at most 26 characters for the display, hint too)
        """
        codes = {}
        for code, states, texts in problems:
            for st in states:
                codes[st] = code
            add_texts(code, texts)
        status = SinkStatus(name, codes)
        self.sinks[name] = status
        return status


def add_texts(code, texts):
    """Problem ``code``'s texts: ``{"en": (text, hint), "de": (text, hint)}`` (kept, not
    copied); a text or hint None keeps the language module's (the web port sets a hint only)."""
    _ADDED[code] = texts


def _added(code, language, index):
    texts = _ADDED.get(code)
    if texts is None:
        return None
    pair = texts.get(language) or texts.get("en")
    return pair[index] if pair else None


def _lookup(shown, code, language, module, name):
    """``code``'s entry of dict ``name`` in language module ``module`` ("" when it has none),
    kept in ``shown[language]``. The module is imported for it and, on the board, leaves
    ``sys.modules`` at once: only the texts shown stay on the heap (a board shows a few of the
    problems, in one language). No heap for the import: None (asked again next time)."""
    mine = shown.get(language)
    if mine is None:
        mine = shown[language] = {}
    text = mine.get(code)
    if text is None:
        full = __name__.rpartition(".")[0] + "." + module
        try:
            text = getattr(__import__(full, None, None, (name,)), name).get(code, "")
        except MemoryError:
            return None
        finally:
            if _UNLOAD:
                sys.modules.pop(full, None)
                try:
                    delattr(sys.modules[full.rpartition(".")[0]], module)
                except (AttributeError, KeyError):
                    pass
        mine[code] = text
    return text


def problem_text(code, language="en"):
    """The short user text for a problem code in ``language`` ("de" or "en"; others: English)."""
    text = _added(code, language, 0)
    if text is None:
        module = "problemtexts_de" if language == "de" else "problemtexts_en"
        text = _lookup(_SHOWN_TEXTS, code, language, module, "TEXTS")
    return text or code


def problem_hint(code, language="en"):
    """What to do about a problem, or None (only the display's status screen shows it)."""
    hint = _added(code, language, 1)
    if hint is None:
        module = "problemhints_de" if language == "de" else "problemhints_en"
        hint = _lookup(_SHOWN_HINTS, code, language, module, "HINTS")
    return hint or None
