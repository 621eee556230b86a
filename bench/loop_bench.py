"""The super-loop on the PC: pass time without a telegram, and the cost of one telegram.

Real app (CSV on a temporary folder, no fsync, no network), virtual Netz NOE meter, clock
advanced by hand. Figures: median and max µs of ``loop_once``.
"""

import os
import statistics
import tempfile
import time

from sim.hardware import Hardware, ManualClock, SimRadio, SimUart
from sim.meter import VirtualMeter
from smartmeter import app as app_mod
from smartmeter import config
from smartmeter.datalog.sd import RealFS
from smartmeter.timeutil import epoch_from_fields


def run(telegrams=2000, idle_passes=20):
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "sd"))
        clock = ManualClock(start_epoch=epoch_from_fields((2024, 6, 1, 8, 0, 0)))
        values = {"METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB", "LOG_DIR": "/sd/logs"}
        cfg = config.load(lambda _n: None, values)
        uart = SimUart()
        hw = Hardware(
            uart=uart,
            fs=RealFS(fsync=False, root=tmp),
            log_dir="/sd/logs",
            radio=SimRadio(),
            clock=clock,
        )
        app = app_mod.build(hw, cfg, web=False)
        meter = VirtualMeter("netznoe", cfg.METER_KEY, None, seed=2)
        data = [meter.telegram(clock.epoch + 5 * i) for i in range(telegrams)]
        with_t, idle = [], []
        for d in data:
            uart.push(d)
            t0 = time.perf_counter()
            app.loop_once()
            with_t.append((time.perf_counter() - t0) * 1e6)
            clock.advance(250)
            for _ in range(idle_passes):
                t0 = time.perf_counter()
                app.loop_once()
                idle.append((time.perf_counter() - t0) * 1e6)
                clock.advance(4750 // idle_passes)
        assert app.state.counters.csv_rows == telegrams
        return {
            "idle_pass_us_median": statistics.median(idle),
            "idle_pass_us_max": max(idle),
            "telegram_pass_us_median": statistics.median(with_t),
            "telegram_pass_us_max": max(with_t),
            "telegram_cost_us": statistics.median(with_t) - statistics.median(idle),
        }
