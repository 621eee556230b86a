"""Display: time to update the screens after a telegram, display-tree changes per telegram, and
the time to switch to a screen (it is built then: only the visible screen is in the tree).

The real Ui on Blinka's displayio with the real ST7735R driver (sim.display); each telegram
changes the values like a real household does.
"""

import statistics
import time

from sim import screens
from sim.display import make_png_display
from sim.meter import VirtualMeter
from smartmeter import timeutil
from smartmeter.protocol.dlms import Decoder
from smartmeter.ui.control import Ui


def run(telegrams=30):
    display, _snapshot = make_png_display()
    state = screens.normal()
    ui = Ui(display, None, state, "de", 0, None, timeutil.ticks_diff)  # backlight stays on
    meter = VirtualMeter("netznoe", bytes(16), None, seed=4)
    dec = Decoder()
    from sim import telegrams as tg

    out = {}
    for screen in ("phases", "power", "energy", "env"):
        switch = []
        for _ in range(5):  # away and back: the screen is built again each time
            ui.goto("status")
            ui.poll(0)
            ui.goto(screen)
            t0 = time.perf_counter()
            ui.poll(0)
            switch.append((time.perf_counter() - t0) * 1000)
        total, changes = [], []
        now = 1000
        for i in range(telegrams):
            epoch = 1717228800 + 5 * i
            fields = timeutil.fields_from_epoch(epoch + 7200)
            state.latest = dec.decode_apdu(
                tg.plaintext("netznoe", meter.values(epoch), fields, 120)
            )
            state.latest_ticks = now
            before = ui.changes
            t0 = time.perf_counter()
            ui.poll(now)
            total.append((time.perf_counter() - t0) * 1000)
            changes.append(ui.changes - before)
            now += 5000
        out[ui.screen_name()] = {
            "update_ms_median": statistics.median(total),
            "changes_per_telegram": statistics.median(changes),
            "switch_ms_median": statistics.median(switch),
        }
    return out
