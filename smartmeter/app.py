# SPDX-License-Identifier: MIT
"""The super-loop: UART bytes -> readings -> state -> sinks, every sink isolated and counted.

One pass (``loop_once``):

1. Move what the UART holds into the transport reader (non-blocking, bounded per pass). Each
   decoded reading updates the state and goes to the CSV log at once, and is queued for the
   network sinks.
2. Buttons and display.
3. The web server (long responses are sliced and call ``service_uart`` between slices).
4. Timed work when due: Graphite, MQTT, sensor, SD remount/retention, NTP, WiFi, status line.
5. Feed the watchdog: the pass completed.

The hardware arrives as one ``interfaces.Hardware`` object (filled by ``device.py`` on the
board, ``sim/`` on a PC): uart, display, keys, i2c, fs, mount, log_dir, pool, radio, clock,
watchdog, console, reset, mem_free. Anything optional may be None and the rest runs on.

The parts the loop drives follow ``interfaces.Output``: a ``name`` and optionally
``on_reading(reading, epoch, extras)`` (fast: queue only) and ``poll(now_ms)`` (the timed I/O).
Every exception from either is caught, counted and kept as text in ``state.last_errors[name]``.
"""

import gc
import sys

from . import __version__, timeutil
from .configvalues import Config
from .linesearch import LINES, LineSearch, line_name
from .protocol.dlms import COUNTERS as DECODER_COUNTERS
from .protocol.pipeline import Pipeline
from .protocol.reading import (
    A_MINUS,
    A_PLUS,
    CLOCK_BOARD,
    CLOCK_FLAG,
    CLOCK_METER_WRONG,
    EXTRAS,
    HUMIDITY,
    P_MINUS,
    P_PLUS,
    RSSI,
    TEMPERATURE,
)
from .protocol.transport import ACK, READER_COUNTERS
from .state import History, State, problem_text
from .timeutil import ticks_diff

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_UART_CHUNK = const(512)  # bytes per readinto; ~2 s of M-Bus at 2400 baud, 0.5 s at 9600
_UART_READS_PER_PASS = const(8)  # bounded: a flood cannot starve the rest of the loop
# Once a pass has taken this long, the outputs not yet polled go on in the next pass: each
# output's own wait is bounded (Graphite, InfluxDB 0.6 s; a TCP connect 0.5 s), and this keeps
# the waits of several outputs on one dead host from adding up past a second in one pass.
_SINKS_PASS_MS = const(250)
_STATUS_EVERY_MS = const(60_000)  # status line on the console when no telegram arrives
_NTP_EVERY_MS = const(6 * 3600_000)
_NTP_RETRY_MS = const(60_000)
_WIFI_RETRY_MS = const(30_000)
_UART_RETRIES = const(3)  # set_line failures in a row before the board restarts
# gc.mem_free() walks the heap's whole allocation table on CircuitPython (0.47 ms at 2 MiB in
# the VM on a PC, more on PSRAM): sample the low-water mark once a second and after telegrams
_MEM_EVERY_MS = const(1000)
# A meter time before 2020 (or from 2100 on) is wrong, and so is one further than this from a
# set board clock (NTP): 15 minutes, well beyond the drift of either clock between syncs, well
# short of an hour (a meter that misses the summer-time change). Once wrong, the meter must
# come back within half of it, so a meter near the bound does not flip between the clocks.
METER_CLOCK_TOLERANCE_S = const(900)
_METER_EPOCH_MIN = const(1577836800)  # 2020-01-01T00:00:00Z
_METER_EPOCH_END = 4102444800  # 2100-01-01T00:00:00Z (beyond 31 bits: not a const)
# Free heap a pass needs after build (collected): a telegram's pass allocates about 5 KiB
# (decode, CSV row, status line) and the heap is never one free block. A board with less left
# after starting its parts sheds parts (``SHED_ORDER``) before the first telegram.
_HEADROOM = const(12_288)

# The parts the board sheds when its heap runs out, first to last: what the CSV log of the
# meter needs least goes first. The display goes last: it is where "CSV logging off" shows.
SHED_ORDER = ("web", "prices", "influx", "graphite", "mqtt", "setup", "sensor", "usage", "display")


class App:
    """The firmware: build with a hardware object and a Config, then ``run()``."""

    def __init__(self, hw, config=None, state=None, sinks=None):
        self.hw = hw
        self.config = config if config is not None else Config()
        cfg = self.config
        self.state = state if state is not None else State()
        st = self.state
        st.version, mismatch = firmware_version()
        if mismatch:
            cfg.problems.append(mismatch)
        st.hostname = cfg.HOSTNAME
        st.key_set = cfg.METER_KEY is not None
        st.config_problems = list(cfg.problems)
        self.clock = hw.clock
        # Pass times count wall-clock time: the board's ticks are; the simulator's clock may run
        # --speed times fast (its ``wall_ms`` is real time), like the web server's budgets.
        self._wall = getattr(hw.clock, "wall_ms", None) or hw.clock.ticks_ms
        self._uart_buf = bytearray(_UART_CHUNK)
        self._uart_mv = memoryview(self._uart_buf)
        self.pipeline = Pipeline(
            cfg.METER_KEY,
            cfg.METER_AUTH_KEY,
            self._on_reading,
            self._on_error,
            cfg.reader_transport,
            cfg.METER_LAYOUT,
            getattr(hw, "aes_backend", None),
        )
        self.acks = 0  # E5 acknowledgements written (AMIS) on the UART's TX pin
        self.line = None
        self.sinks = list(sinks or [])
        self._sink_next = 0  # the output polled first in the next pass (see _poll_sinks)
        self.extras = dict.fromkeys(EXTRAS)
        self.extras[CLOCK_FLAG] = None
        # the parts build() starts (None: absent, disabled or left out)
        self.storage = self.csv = self.usage = self.tariff = None
        self.ui = self.sensor = self.netsetup = self.web = None
        self.restart_requested = False
        self.parts = {}  # PARTS name -> the running part (what shed() can stop)
        self.part_modules = {}  # PARTS name -> modules it loaded (board: unloaded when shed)
        self.part_labels = {}  # PARTS name -> (English, German, console words), set by build
        self.csv_memory_off = False  # said "CSV logging off: not enough memory" while running
        self._mem_rows = -1  # csv_rows at the last MemoryError
        self._mem_sampled = None  # ticks of the last mem_free() sample (None: never)
        self._mem_decoded = -1  # counters.decoded at that sample
        self._mem_bytes = 0  # bytes from the meter at the last MemoryError
        self._mem_said = 0  # ticks of the last console line about it
        self._uart_failures = 0  # set_line failures in a row
        self._start = self.clock.ticks_ms()
        self._last_status = self._start
        self._next_ntp = self._start
        self._next_wifi = self._start
        self._status_due = False
        self._setup_line()

    # -- the loop ---------------------------------------------------------------------------
    def run(self):
        """Run forever. Only this outermost handler may reset the board, after logging why."""
        while True:
            try:
                self.loop_once()
            except MemoryError:
                self.memory_error()
            except Exception as exc:  # noqa: BLE001 - last line of defence, logged then reset
                self._log("fatal: %s: %s" % (type(exc).__name__, exc))
                reset = getattr(self.hw, "reset", None)
                if reset is None:
                    raise
                reset("fatal " + type(exc).__name__)
            if self.restart_requested:
                reset = getattr(self.hw, "reset", None)
                if reset is not None:
                    reset("restart requested")
                self.restart_requested = False

    def loop_once(self):
        """One pass of the super-loop. Never raises for sink, network or storage faults."""
        now = self.clock.ticks_ms()
        began = self._wall()
        st = self.state
        c = st.counters
        c.loop_passes += 1
        if self.csv_memory_off and c.csv_rows != self._mem_rows:
            self._csv_back()
        self.service_uart()
        if self.line is not None:
            self._search_line(now)
        self._console()
        self._poll_sinks(now, began)
        self._timed(now)
        if self._status_due:
            self._status_due = False
            self._print_status()
        end = self.clock.ticks_ms()
        took = ticks_diff(self._wall(), began)
        if took > c.slowest_pass_ms:
            c.slowest_pass_ms = took
        st.uptime_s = ticks_diff(end, self._start) // 1000
        mem_free = getattr(self.hw, "mem_free", None)
        if mem_free is not None and (
            c.decoded != self._mem_decoded
            or self._mem_sampled is None
            or ticks_diff(end, self._mem_sampled) >= _MEM_EVERY_MS
        ):
            self._mem_sampled = end
            self._mem_decoded = c.decoded
            free = mem_free()
            if c.mem_free_min < 0 or free < c.mem_free_min:
                c.mem_free_min = free
        watchdog = getattr(self.hw, "watchdog", None)
        if watchdog is not None:
            watchdog.feed()

    def _poll_sinks(self, now, began):
        """Each output's ``poll``, in turn. Once the pass has taken ``_SINKS_PASS_MS``, the
        rest wait for the next pass, which starts with the first one left out."""
        sinks = self.sinks
        n = len(sinks)
        first = self._sink_next if self._sink_next < n else 0
        self._sink_next = 0
        for k in range(n):
            i = (first + k) % n
            sink = sinks[i]
            poll = getattr(sink, "poll", None)
            if poll is None:
                continue
            self._isolated(sink, poll, now)
            if k < n - 1 and ticks_diff(self._wall(), began) >= _SINKS_PASS_MS:
                self._sink_next = (i + 1) % n
                return

    def service_uart(self):
        """Move what the UART holds into the reader. Also called between slices of long work."""
        uart = self.hw.uart
        if uart is None:
            return 0
        total = 0
        for _ in range(_UART_READS_PER_PASS):
            try:
                n = uart.readinto(self._uart_buf)
            except OSError as exc:
                self.state.counters.uart_overflows += 1
                self._remember("uart", exc)
                break
            if not n:
                break
            total += n
            data = self._uart_mv[:n]
            self.pipeline.feed(data)
            acks = self.pipeline.reader.take_acks()
            if acks:
                self._acknowledge(uart, acks)
            if n < _UART_CHUNK:
                break
        overflow = getattr(uart, "overflows", None)
        if overflow is not None:
            self.state.counters.uart_overflows = overflow
        if total:
            self._sync_counters()
        return total

    # -- line settings and the M-Bus slave ----------------------------------------------------
    def _setup_line(self):
        """Fixed line from the settings, or the line search (METER_TRANSPORT auto, no overrides)."""
        cfg = self.config
        st = self.state
        st.meter_tx = bool(getattr(self.hw, "meter_tx", False))
        set_line = getattr(self.hw, "set_line", None)
        if cfg.line_search and set_line is not None and self.hw.uart is not None:
            first = 0
            memory = getattr(self.hw, "line_memory", None)
            if memory is not None:
                try:
                    first = memory.load() or 0  # start with the setting that worked last time
                except Exception as exc:  # noqa: BLE001 - no memory: start at the first
                    self._remember("line memory", exc)
            self.line = LineSearch(self._start, ticks_diff, first)
            st.line_state = "searching"
            self._apply_line(*self.line.setting)
            self._log("line: searching, trying %s" % self.line.name)
        else:
            st.line_state = "fixed"
            st.line = line_name(cfg.baudrate, cfg.parity)
            if set_line is not None and self.hw.uart is not None:
                self._apply_line(cfg.baudrate, cfg.parity, None)

    def _apply_line(self, baudrate, parity, transport):
        st = self.state
        try:
            uart = self.hw.set_line(baudrate, parity)
        except Exception as exc:  # noqa: BLE001 - the next setting or the next search retries
            # a parity change deinitialises the old UART before it builds the new one: never
            # read the old one again (ValueError on every pass); the next set_line builds one
            self.hw.uart = None
            self._remember("uart", exc)
            if isinstance(exc, MemoryError):
                self.memory_error()
            self._uart_failures += 1
            reset = getattr(self.hw, "reset", None)
            if self._uart_failures >= _UART_RETRIES and reset is not None:
                # its pins may stay claimed ("tx in use"): only a restart frees them
                reset("meter UART cannot be rebuilt (%d tries)" % self._uart_failures)
            return
        self._uart_failures = 0
        if uart is not None:
            self.hw.uart = uart
        st.line = line_name(baudrate, parity)
        # bytes of the old setting are garbage: start framing afresh (raw bursts: 115200 only)
        reader = self.pipeline.reader
        if transport is not None:
            reader.set_transport(transport)
        reader.reset()

    def _search_line(self, now):
        line = self.line
        st = self.state
        c = st.counters
        index = line.poll(now, c.decoded, c.frames_ok, self.pipeline.reader.acks_total)
        if index is not None:
            c.line_switches += 1
            st.line_state = "searching"
            st.line_found_ms = None
            self._apply_line(*line.setting)
            self._log("line: trying %s (%s)" % (line.name, LINES[index][3]))
        elif not line.searching and st.line_state == "searching":
            st.line_state = "found"
            st.line_found_ms = line.found_after_ms
            self._log(
                "line: %s works (found after %d s)" % (line.name, line.found_after_ms // 1000)
            )
            memory = getattr(self.hw, "line_memory", None)
            if memory is not None:
                try:
                    memory.save(line.index)
                except Exception as exc:  # noqa: BLE001
                    self._remember("line memory", exc)

    def _acknowledge(self, uart, acks):
        """Answer the meter's SND_NKE/SND_UD with E5 (AMIS stops sending without it)."""
        st = self.state
        st.link_frames = self.pipeline.reader.acks_total
        if not st.meter_tx:
            return  # no TX pin: the problem list says AMIS needs the TX line
        try:
            uart.write(ACK * acks)  # at once: within the M-Bus reply window
            self.acks += acks
        except Exception as exc:  # noqa: BLE001 - a failing TX must not stop reading
            st.counters.ack_errors += 1
            self._remember("uart tx", exc)
        st.counters.acks_sent = self.acks

    # -- readings ---------------------------------------------------------------------------
    def _on_reading(self, reading):
        st = self.state
        now = self.clock.ticks_ms()
        epoch, flag = self._row_time(reading)
        st.latest = reading
        st.latest_epoch = epoch
        st.latest_ticks = now
        st.last_stage_error = None
        if epoch is not None:
            if flag != CLOCK_METER_WRONG:
                st.clock_set = True
            values = reading.values
            p_plus = values.get(P_PLUS)
            if p_plus is not None:  # absent (or dropped as implausible): no point, never a 0
                st.history.add(epoch, p_plus - values.get(P_MINUS, 0))
        extras = self.extras
        extras[RSSI] = st.wifi_rssi
        extras[TEMPERATURE] = st.temperature
        extras[HUMIDITY] = st.humidity
        extras[CLOCK_FLAG] = flag
        _usage_extras(extras, st.usage, epoch)
        _usage_ahead(st.ahead, st.usage, epoch, reading.values.get(P_PLUS))
        for sink in self.sinks:
            handler = getattr(sink, "on_reading", None)
            if handler is not None:
                self._isolated(sink, handler, reading, epoch, extras)
        self._status_due = True

    def _row_time(self, reading):
        """``(UTC epoch or None, clock flag)`` of a reading: the time every sink uses.

        The meter's time, unless it is wrong (before 2020, or further than
        ``METER_CLOCK_TOLERANCE_S`` from a set board clock): then the board's clock, flag
        ``CLOCK_BOARD``. With no board clock either, the meter's wrong time is the only one:
        it stamps the reading, flag ``CLOCK_METER_WRONG`` (a row needs a time; dropping the
        telegram would lose it for good). No meter time: the board's clock, None while unset.
        """
        st = self.state
        board = self.clock.time()  # None while the RTC is unset
        if reading.meter_time is None:
            st.meter_clock_wrong = False
            return board, None
        try:
            meter = timeutil.utc_epoch(reading.meter_time, reading.utc_offset, reading.dst)[0]
        except (TypeError, ValueError, OverflowError):
            meter = None
        wrong = meter is None or meter < _METER_EPOCH_MIN or meter >= _METER_EPOCH_END
        if not wrong and board is not None:
            bound = METER_CLOCK_TOLERANCE_S
            if st.meter_clock_wrong:
                bound //= 2
            wrong = meter - board > bound or board - meter > bound
        st.meter_clock_wrong = wrong
        if not wrong:
            return meter, None
        st.counters.meter_clock_wrong += 1
        if board is not None:
            return board, CLOCK_BOARD
        return meter, CLOCK_METER_WRONG

    def _on_error(self, exc):
        st = self.state
        st.last_stage_error = (exc.stage, str(exc))
        st.last_stage_ticks = self.clock.ticks_ms()
        if exc.stage != "duplicate":
            self._log("telegram %s: %s" % (exc.stage, exc))

    def _sync_counters(self):
        c = self.state.counters
        reader = self.pipeline.reader
        decoder = self.pipeline.decoder
        for name in READER_COUNTERS:
            setattr(c, name, getattr(reader, name))
        for name in DECODER_COUNTERS:
            setattr(c, name, getattr(decoder, name))
        if decoder.last_implausible is not None:  # shown with the counter (status, 'd', web)
            self.state.last_errors["meter values"] = decoder.last_implausible

    # -- isolation --------------------------------------------------------------------------
    def _isolated(self, sink, fn, *args):
        try:
            return fn(*args)
        except MemoryError:
            self.memory_error()
        except Exception as exc:  # noqa: BLE001 - one sink must never stop the loop
            self.state.counters.sink_errors += 1
            self._remember(sink.name, exc)
        return None

    # -- running out of heap ----------------------------------------------------------------
    def memory_error(self):
        """A MemoryError was caught (a pass or a part): count it, collect, make room.

        Each one sheds the next running part of ``SHED_ORDER`` and says so. With nothing left
        to shed (or only the display) while no CSV row got written since the last one, logging
        is not happening: console, display and web page say "CSV logging off: not enough
        memory" (and "CSV logging on again" once a row is written), never silence.
        """
        st = self.state
        c = st.counters
        c.memory_errors += 1
        gc.collect()
        now = self.clock.ticks_ms()
        first = st.memory_error_ticks is None
        if first or ticks_diff(now, self._mem_said) >= _STATUS_EVERY_MS:
            self._mem_said = now
            self._log(
                "memory: a pass ran out of heap (%d so far)%s" % (c.memory_errors, self._free())
            )
        st.memory_error_ticks = now
        rows = c.csv_rows
        bytes_in = self.pipeline.reader.bytes_in
        # stuck: the meter sent since the last MemoryError, and not one row got written
        stuck = rows == self._mem_rows and bytes_in != self._mem_bytes
        self._mem_rows = rows
        self._mem_bytes = bytes_in
        name = self._next_shed()
        stuck = stuck and self.csv is not None and not self.csv_memory_off
        if stuck and (name is None or name == "display"):
            self.csv_memory_off = True
            self.left_out("csv", self.labels("csv"))
            return
        if name is not None:
            self.shed(name)

    def _next_shed(self):
        for name in SHED_ORDER:
            if name in self.parts:
                return name
        return None

    def shed(self, name):
        """Stop running part ``name`` for lack of heap, free what it holds and say so."""
        part = self.parts.pop(name)
        if part in self.sinks:
            self.sinks.remove(part)
        for method in ("stop", "close"):
            fn = getattr(part, method, None)
            if fn is not None:
                try:
                    fn()
                except Exception:  # noqa: BLE001, S110 - it is going anyway
                    pass
                break
        st = self.state
        if name == "web":
            self.web = None
            st.history = History(0)  # the day curve is the web page's
        elif name == "usage":
            self.usage = self.tariff = None  # prices, its other user, is shed before it
            st.usage = None
        elif name == "prices":
            st.prices = None
        elif name == "display":
            self.ui = None
            display = getattr(self.hw, "display", None)
            if display is not None:
                try:  # the board's terminal: the console lines (this one too) show there
                    import displayio

                    display.root_group = displayio.CIRCUITPYTHON_TERMINAL
                except Exception:  # noqa: BLE001, S110 - no terminal on this display
                    pass
        elif name == "setup":
            self.netsetup = None
        elif name == "sensor":
            self.sensor = None
        sink = st.sinks.get(name)
        if sink is not None:
            sink.state = "disabled"
        part = None
        unload_modules(self.part_modules.pop(name, ()))
        if name == "web":
            self.drop_settings_code()
        self.left_out(name, self.labels(name))

    def labels(self, name):
        """(English, German, console words) of part ``name`` (``assemble.PARTS``)."""
        return self.part_labels.get(name) or (name, name, name)

    def _csv_back(self):
        self.csv_memory_off = False
        st = self.state
        if "off_csv" in st.left_out:
            st.left_out.remove("off_csv")
        st.last_errors["csv"] = ""
        self._log("CSV logging on again")

    def drop_settings_code(self):
        """Without the web page nothing reads settings after boot: the settings' reader leaves
        the heap (``_SETTINGS_CODE``; the values stay in ``self.config``)."""
        if "web" not in self.parts:
            unload_settings_code()

    def make_room(self, headroom=_HEADROOM):
        """After build: shed parts (``SHED_ORDER``, not the display) until a pass fits."""
        mem_free = getattr(self.hw, "mem_free", None)
        if mem_free is None:
            return
        gc.collect()
        while mem_free() < headroom:
            name = self._next_shed()
            if name is None or name == "display":
                return
            self.shed(name)

    def left_out(self, name, labels):
        """Part ``name`` did not start for lack of heap: show it as a problem and say so.

        :param labels: (English, German, console words), see ``PARTS``
        """
        gc.collect()
        st = self.state
        st.leave_out(name, labels[0], labels[1])
        words = labels[2]
        st.last_errors[name] = "not enough memory"
        self._log("%s off: not enough memory%s" % (words, self._free()))

    def _free(self):
        mem_free = getattr(self.hw, "mem_free", None)
        if mem_free is not None:
            try:
                return " (%d bytes free)" % mem_free()
            except Exception:  # noqa: BLE001, S110 - the figure is only a hint
                pass
        return ""

    def backfill(self):
        """A CSV backfill for one output (each keeps its own read position), None without SD."""
        if self.storage is None:
            return None
        return _load("datalog.csvlog").CsvBackfill(self.storage)

    def remember(self, name, exc):
        """Keep ``exc`` as the last error of part ``name`` and log it."""
        self._remember(name, exc)

    def _remember(self, name, exc):
        text = str(exc) or type(exc).__name__
        self.state.last_errors[name] = text[:80]
        self._log("%s error: %s" % (name, text[:80]))

    # -- timed work -------------------------------------------------------------------------
    def _timed(self, now):
        hw = self.hw
        st = self.state
        radio = getattr(hw, "radio", None)
        if radio is not None:
            try:
                st.wifi_connected = bool(radio.connected)
                st.ip = radio.ip if st.wifi_connected else None
                st.wifi_rssi = radio.rssi if st.wifi_connected else None
                st.wifi_ssid = self.config.CIRCUITPY_WIFI_SSID or None
                if not st.wifi_connected and ticks_diff(now, self._next_wifi) >= 0:
                    self._next_wifi = timeutil.ticks_add(now, _WIFI_RETRY_MS)
                    radio.reconnect()
            except Exception as exc:  # noqa: BLE001
                self._remember("wifi", exc)
        clock = self.clock
        if ticks_diff(now, self._next_ntp) >= 0 and st.wifi_connected:
            sync = getattr(clock, "sync_ntp", None)
            ok = False
            if sync is not None:
                try:
                    ok = sync(self.config.NTP_SERVER)
                except Exception as exc:  # noqa: BLE001
                    self._remember("ntp", exc)
            delay = _NTP_EVERY_MS if ok else _NTP_RETRY_MS
            self._next_ntp = timeutil.ticks_add(now, delay)
        if clock.time() is not None:
            st.clock_set = True
        if ticks_diff(now, self._last_status) >= _STATUS_EVERY_MS:
            self._status_due = True

    # -- console ----------------------------------------------------------------------------
    def _console(self):
        console = getattr(self.hw, "console", None)
        if console is None:
            return
        ch = console.read_char()
        if ch == "d":
            for line in self.status_dump():
                console.write(line)
        elif ch == "r":
            console.write("restart requested from the console")
            self.restart_requested = True

    def status_line(self):
        """One compact line: time, power, energy, stage counters, sinks, problems (UI_LANGUAGE)."""
        st = self.state
        c = st.counters
        parts = []
        r = st.latest
        if r is not None:
            v = r.values
            parts.append(r.iso_time() or "-")
            parts.append("P+%sW P-%sW" % (v.get(P_PLUS, "-"), v.get(P_MINUS, "-")))
            parts.append("A+%sWh A-%sWh" % (v.get(A_PLUS, "-"), v.get(A_MINUS, "-")))
        parts.append(
            "rx %d fr %d cs %d dec %d key %d tag %d dup %d"
            % (
                c.bytes_in,
                c.frames_ok,
                c.checksum_errors,
                c.decoded,
                c.wrong_key,
                c.tag_mismatch,
                c.duplicates,
            )
        )
        parts.append("sd %s rows %d err %d" % (st.sd_state, c.csv_rows, c.csv_errors))
        for s in st.sinks.values():
            parts.append("%s %s %d/%d" % (s.name, s.state, s.sent, s.queued))
        if st.line is not None:
            text = "line " + st.line
            if st.line_state == "searching":
                text += " (searching line settings)"
            if st.link_frames:
                text += " acks %d" % self.acks
            parts.append(text)
        problems = st.problems(self.clock.ticks_ms(), ticks_diff)
        if problems:
            # in UI_LANGUAGE, as on the display and the web page: a board loads one language
            language = self.config.UI_LANGUAGE
            parts.append("! " + ", ".join(problem_text(p, language) for p in problems))
        return " | ".join(parts)

    def status_dump(self):
        """The 'd' console command: every counter and state, one per line (no secrets).

        Console-only, so its code is loaded on the first 'd' (``statusdump.py``), not at boot."""
        from .statusdump import status_lines

        return status_lines(self)

    def _print_status(self):
        self._last_status = self.clock.ticks_ms()
        self._log(self.status_line())

    def _log(self, text):
        console = getattr(self.hw, "console", None)
        if console is not None:
            console.write(text)


def _usage_extras(extras, usage, epoch):
    """Today's import/export (Wh) and this quarter's price (mct/kWh) for MQTT, when known."""
    today = None
    price = None
    if usage is not None and epoch is not None:
        today = usage.period(usage.days, usage.day_key(epoch))
        if usage.tariff is not None:
            price = usage.tariff.import_q(epoch // 900)[0]
    extras["today_import"] = today[0] if today else None
    extras["today_export"] = today[1] if today else None
    extras["price_now"] = price


def _usage_ahead(ahead, usage, epoch, power_w):
    """The cheapest windows, the month's peaks and the open quarter's demand (``state.ahead``,
    for MQTT; ``datalog/outlook.py``)."""
    tariff = usage.tariff if usage is not None else None
    outlook = tariff.outlook if tariff is not None else None
    if outlook is not None:
        outlook.fill(ahead, usage, epoch, power_w)


def firmware_version(impl=None):
    """(short text, problem or None) about this firmware and the CircuitPython it runs on.

    The text is "0.1.0 CP10/10.0.3" for a release built for CircuitPython 10 running on 10.0.3
    (see ``build_info``, written by ``make release``; short enough for the system screen),
    "0.1.0 src" when running from source. The problem names both versions when the board runs
    another major version than the release's.
    """
    from . import build_info

    if impl is None:
        import sys

        impl = sys.implementation
    running = None
    if impl.name == "circuitpython":
        running = "%d.%d.%d" % tuple(impl.version[:3])
    built = build_info.CIRCUITPYTHON
    version = build_info.VERSION or __version__
    text = "%s CP%s" % (version, built) if built else version + " src"
    if running:
        text += "/" + running
    problem = None
    if built and running and running.split(".")[0] != str(built):
        problem = "release for CircuitPython %s, board runs %s: get the matching zip" % (
            built,
            running,
        )
    return text, problem


def _load(name):
    """Import a sink module only when it is used (each costs RAM on the device)."""
    return __import__("smartmeter." + name, None, None, [name.rsplit(".", 1)[-1]])


class _Actions:
    """What the buttons and the web page may ask the app to do."""

    def __init__(self, app):
        self._app = app

    def restart(self):
        self._app.restart_requested = True

    def setup_mode(self):
        netsetup = getattr(self._app, "netsetup", None)
        if netsetup is not None:
            netsetup.request(self._app.clock.ticks_ms())


# On the board a part's modules are most of its heap (the web server's: ~100 KiB): a part left
# out or shed takes the modules it loaded out of ``sys.modules`` so the collector can free them
# (a part still running keeps what it uses referenced). Not on a PC: there memory is no
# object and tests hold modules by name.
_UNLOAD = sys.implementation.name in ("circuitpython", "micropython")


# The settings' reader: every setting's kind, default and limits, the TOML reader, the override
# files (~16 KB in the CircuitPython VM). Boot work; afterwards only the web settings page uses it
# (it imports them itself), so a board without the web page unloads them after build. What runs
# on keeps the values only (``configvalues.Config``, ``configvalues.write_private``): nothing in
# the loop may import these two again.
_SETTINGS_CODE = ("smartmeter.overrides", "smartmeter.config") if _UNLOAD else ()
_ASSEMBLE = ("smartmeter.assemble",) if _UNLOAD else ()


def unload_settings_code():
    """Take the settings' reader out of ``sys.modules`` (board only; the caller holds no
    reference to it): its heap comes back at the next collection. A board without WiFi does
    this before ``build`` (no web page can come), so the parts load into the room it leaves."""
    unload_modules(_SETTINGS_CODE)


def unload_modules(names):
    """Take modules ``names`` out of ``sys.modules`` and their package (board only: the
    caller holds no reference): their heap comes back at the next collection."""
    for name in names:
        sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        package = sys.modules.get(parent)
        if package is not None:
            try:
                delattr(package, child)
            except (AttributeError, KeyError):  # not set (CircuitPython raises KeyError)
                pass


def build(hw, cfg, state=None, web=True, listen="0.0.0.0"):
    """Assemble the app and every part the hardware and settings allow (``assemble.build``,
    the ``PARTS`` table there). ``listen``: the web server's address (the board: every
    interface; the simulator: 127.0.0.1).

    Assembling is boot work: on the board ``smartmeter.assemble`` (the parts' table and
    factories, ~3.5 KB) leaves the heap before the parts are checked for room.
    """
    from . import assemble

    app = assemble.build(hw, cfg, state, web, listen)
    del assemble  # let go of it: unloaded next
    unload_modules(_ASSEMBLE)
    app.drop_settings_code()
    app.make_room()
    return app


def device_fs():
    """The filesystem interface for the SD card on the device."""
    from .datalog.sd import RealFS

    return RealFS()
