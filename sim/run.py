# SPDX-License-Identifier: MIT
"""The simulation: PC hardware + virtual meter + the real app loop.

Used by ``python -m sim`` and by the end-to-end tests (which drive ``step()`` with a manual
clock). SD card = ``<data_dir>/sd`` (so ``LOG_DIR = "/sd/logs"`` maps to ``<data_dir>/sd/logs``),
screens = ``<data_dir>/screens/*.png``.
"""

import os
import socket
import sys
import time

from smartmeter import app as app_mod
from smartmeter import config as config_mod
from smartmeter import overrides as overrides_mod
from smartmeter.datalog.sd import RealFS
from smartmeter.linesearch import line_name

from . import meter as meter_mod
from .hardware import (
    Console,
    Hardware,
    LineMemory,
    MeterThread,
    SimKeys,
    SimRadio,
    SimUart,
    SimWatchdog,
)

PUSH_INTERVAL_MS = 5000  # Austrian meters push every 5 s (TINETZ, Netz NOE, VKW)


def _replay_telegrams(path, key=None, auth_key=None):
    """Split a hex capture into per-telegram chunks with the firmware's own reader.

    The same search as ``python -m smartmeter decode``: M-Bus and HDLC frames, or, when the
    capture holds no frame at all, unframed GCM bursts (T210-D-r). A burst's end is known only
    once it decodes (a false start swallows the bytes after it), so with ``key`` the bursts
    are decoded to find them; without a key every plausible burst header counts.
    """
    from smartmeter.__main__ import parse_hex_text
    from smartmeter.protocol.pipeline import Pipeline

    with open(path, encoding="utf-8", errors="replace") as f:
        data = parse_hex_text(f.read())
    for transport in ("auto", "raw"):
        ends = []
        pos = [0]
        pipe = Pipeline(key, auth_key, None, None, transport)
        reader = pipe.reader
        telegram = pipe._telegram if key is not None else None

        def on_telegram(payload, name, telegram=telegram, ends=ends, pos=pos):
            ok = telegram(payload, name) if telegram is not None else True
            if ok is not False:
                ends.append(pos[0])
            return ok

        reader.on_telegram = on_telegram
        for i in range(len(data)):
            pos[0] = i + 1
            reader.feed(data[i : i + 1])
        if reader.frames_ok or reader.bad_bodies:
            break  # framed (M-Bus, HDLC): never hunt for bursts in it
    chunks, start = [], 0
    for end in ends:
        chunks.append(data[start:end])
        start = end
    return chunks


class Simulation:
    """Wire the app to PC hardware and a virtual meter.

    :param values: settings dict (parsed settings.toml)
    :param clock: SimClock (real time, accelerated) or ManualClock (tests)
    """

    def __init__(
        self,
        values,
        data_dir="sim-data",
        layout="netznoe",
        replay=None,
        clock=None,
        display="png",
        seed=1,
        quiet=False,
        web=True,
        console_out=None,
        realtime=False,
        listen="127.0.0.1",
        uart_buffer=8192,
        pool=None,
    ):
        self.data_dir = os.path.abspath(data_dir)
        self.listen = listen
        sd_root = os.path.join(self.data_dir, "sd")
        os.makedirs(sd_root, exist_ok=True)
        self.fs = RealFS(root=self.data_dir)  # "/sd/logs" -> <data_dir>/sd/logs
        found = overrides_mod.load(self.fs)  # what the web settings page saved, as on the board
        merged = dict(values)
        merged.update(found.values)
        self.config = config_mod.load(lambda _name: None, merged)
        self.config.problems.extend(found.problems)
        self.clock = clock
        self.keys = SimKeys()
        out = None if quiet else (console_out or sys.stdout)
        self.console = Console(out=out, keys=self.keys, interactive=not quiet and None)
        self.quiet = quiet
        # the board's receiver_buffer_size (device.py), on the line setting of the settings
        self.uart = SimUart(uart_buffer, self.config.baudrate, self.config.parity)
        self.screens_dir = os.path.join(self.data_dir, "screens")
        disp = None
        self._snapshot = None
        if display != "none":
            from . import display as display_mod

            disp, self._snapshot = display_mod.make_png_display()
            os.makedirs(self.screens_dir, exist_ok=True)
        self._window = None
        if display == "window":
            try:
                import pygame

                pygame.init()
                self._window = pygame.display.set_mode((480, 384))
                pygame.display.set_caption("smartmeter (n = NEXT, e = ENTER)")
            except Exception as exc:  # noqa: BLE001 - no pygame or no screen: PNG files only
                print("display window not available (%s): rendering PNG files only" % exc)
        self.hw = Hardware(
            uart=self.uart,
            set_line=self.uart.set_line,
            meter_tx=bool(self.config.PIN_METER_TX),  # the TX line is wired (AMIS needs it)
            line_memory=LineMemory(os.path.join(self.data_dir, "nvm-line")),
            display=disp,
            keys=self.keys,
            fs=self.fs,
            log_dir=self.config.LOG_DIR,
            pool=socket if pool is None else pool,
            radio=SimRadio(),
            clock=clock,
            console=self.console,
            reset=self._reset,
            watchdog=SimWatchdog(self.config.WATCHDOG_S or None),
        )
        self.app = app_mod.build(self.hw, self.config, web=web, listen=listen)
        self.replay = None
        if replay:
            cfg = self.config
            self.replay = _replay_telegrams(replay, cfg.METER_KEY, cfg.METER_AUTH_KEY)
        self.meter = None
        if self.replay is None:
            self.meter = meter_mod.VirtualMeter(
                layout, self.config.METER_KEY, self.config.METER_AUTH_KEY, seed
            )
        self.sent = 0
        self.sent_while_searching = 0
        self.decoded_while_searching = None  # decoded when the search ended (the proving one)
        self._next_push = clock.ticks_ms()
        self._last_frame = -1
        self.resets = []
        self.meter_thread = None
        if realtime:
            self.meter_thread = MeterThread(self._push_is_due, self._push_now)
            self.meter_thread.start()

    def _reset(self, why):
        self.resets.append(why)
        self.console.write("(simulated reset: %s)" % why)

    # -- running -----------------------------------------------------------------------------
    def push_due(self):
        """Let the virtual meter send when its interval has passed (simulated time)."""
        if not self._push_is_due():
            return False
        return self._push_now()

    def _push_is_due(self):
        from smartmeter.timeutil import ticks_diff

        return ticks_diff(self.clock.ticks_ms(), self._next_push) >= 0

    def _push_now(self):
        from smartmeter.timeutil import ticks_add

        if self.replay is not None:
            self._next_push = ticks_add(self._next_push, PUSH_INTERVAL_MS)
            if self.sent >= len(self.replay):
                return False
            self.uart.push(self.replay[self.sent])
            self.sent += 1
            return True
        meter = self.meter
        self._next_push = ticks_add(self._next_push, meter.interval_ms)
        before = meter.sent
        data = meter.send(self.clock.time(), self.uart.take_tx())
        if data:
            self.uart.push(data, meter.line)
        if self.app.state.line_state == "searching":
            self.sent_while_searching += meter.sent - before  # cannot be read on that setting
        self.sent = meter.sent
        return bool(data)

    def step(self):
        """One simulator tick: maybe a telegram (unless the meter runs in its own thread), then
        one pass of the real loop."""
        if self.meter_thread is None:
            self.push_due()
        self.app.loop_once()
        st = self.app.state
        if self.decoded_while_searching is None and st.line_state != "searching":
            self.decoded_while_searching = st.counters.decoded
        self._render()

    def lost(self):
        """Telegrams the meter sent that the firmware has not decoded (yet)."""
        c = self.app.state.counters
        return self.sent - c.decoded - c.duplicates

    def _render(self):
        ui = getattr(self.app, "ui", None)
        if self._snapshot is None or ui is None:
            return
        if self._window is not None:
            self._window_keys()
        frame = ui.frames
        if frame != self._last_frame:
            self._last_frame = frame
            image = self._snapshot(os.path.join(self.screens_dir, ui.screen_name() + ".png"))
            if self._window is not None and image is not None:
                self._show(image)

    def _show(self, image):
        import pygame

        big = image.convert("RGB").resize((480, 384))
        surface = pygame.image.fromstring(big.tobytes(), big.size, "RGB")
        self._window.blit(surface, (0, 0))
        pygame.display.flip()

    def _window_keys(self):
        import pygame

        for event in pygame.event.get():
            if event.type == pygame.KEYDOWN and event.unicode in ("n", "e"):
                self.keys.press(0 if event.unicode == "n" else 1)

    def run(self, duration_s=0):
        """Run in real time (accelerated by the clock) for ``duration_s`` wall seconds."""
        end = time.monotonic() + duration_s if duration_s else None
        while end is None or time.monotonic() < end:
            self.step()
            time.sleep(0.002)
        # let the last telegram on the wire be read and logged
        for _ in range(5):
            self.app.loop_once()

    def close(self):
        if self.meter_thread is not None:
            self.meter_thread.stop()
        web = getattr(self.app, "web", None)
        if web is not None and hasattr(web, "stop"):
            web.stop()

    # -- reporting ---------------------------------------------------------------------------
    def banner(self):
        cfg = self.config
        st = self.app.state
        user = cfg.WEB_USER
        password = cfg.WEB_PASSWORD or st.web_password_generated or "(see the system screen)"
        interval = self.meter.interval_ms if self.meter else PUSH_INTERVAL_MS
        lines = [
            "smartmeter simulator: %s meter (%s), telegram every %.1f s"
            % (
                self.meter.layout if self.meter else "replay",
                line_name(*self.meter.line) if self.meter else "capture",
                interval / 1000 / getattr(self.clock, "speed", 1.0),
            ),
            "SD card folder: %s" % os.path.join(self.data_dir, "sd"),
        ]
        if getattr(self.app, "web", None) is not None:
            host = self.listen if self.listen not in ("0.0.0.0", "") else "<this PC's address>"
            lines.append(
                "web: http://%s:%d/  user %s  password %s" % (host, cfg.WEB_PORT, user, password)
            )
        if self._snapshot is not None:
            lines.append(
                "screens: %s/*.png  (keys: n = NEXT, e = ENTER, d = status, r = restart)"
                % self.screens_dir
            )
        for line in lines:
            print(line, flush=True)

    def logged(self):
        return self.app.state.counters.csv_rows

    def summary(self):
        c = self.app.state.counters
        wd = self.hw.watchdog
        text = "sent %d decoded %d logged %d uart_overflow %d longest_pass_ms %d wd_gap_ms %d" % (
            self.sent,
            c.decoded,
            c.csv_rows,
            self.uart.overflows,
            c.slowest_pass_ms,  # wall-clock ms (the app counts passes on wall time)
            int(wd.max_gap_s * 1000) if wd is not None else -1,
        )
        st = self.app.state
        if c.line_switches or st.line_state == "searching":
            # telegrams sent on the meter's line while the board listened on another one
            found = st.line_found_ms
            text += " line %s found_after_s %s sent_while_searching %d (decoded %s)" % (
                st.line.replace(" ", "-") if st.line else "-",
                "-" if found is None else "%d" % (found // 1000),
                self.sent_while_searching,
                self.decoded_while_searching,
            )
        return text
