# SPDX-License-Identifier: MIT
"""``python -m sim``: the real firmware on a PC against a virtual meter.

The same ``smartmeter.app`` loop runs with PC hardware: the virtual meter pushes encrypted,
framed telegrams into a UART with a bounded buffer every 5 s (``--speed N``: N times faster),
the SD card is a folder, the web server listens on 127.0.0.1 (``--listen`` to change), the display
renders to PNG files. The meter sends from its own thread in real time, so a stalled loop loses
telegrams (UART overflow) as it would on the board. The last line printed is a summary:
``sent N decoded N logged N uart_overflow N longest_pass_ms N wd_gap_ms N``.
"""

import argparse
import os
import sys
import time

from smartmeter import config as config_mod

from .hardware import SimClock
from .meter import layouts
from .run import Simulation


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--layout", default="netznoe", choices=layouts())
    p.add_argument("--replay", metavar="FILE", help="replay a hex capture instead of the model")
    p.add_argument("--speed", type=float, default=1.0, help="N times faster than real time")
    p.add_argument("--duration", type=float, default=0, help="stop after S seconds (0 = never)")
    p.add_argument("--data-dir", default="sim-data", help="the simulated SD card (a folder)")
    p.add_argument("--http-port", type=int, default=None, help="web port (default: WEB_PORT)")
    p.add_argument("--display", default="png", choices=("png", "window", "none"))
    p.add_argument("--settings", default=os.path.join(here, "settings.toml"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", default=None, help="simulated start, UTC 'YYYY-MM-DDTHH:MM:SS'")
    p.add_argument("--quiet", action="store_true", help="no status lines, summary only")
    p.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="ADDR",
        help="web server address (default 127.0.0.1: this PC only; 0.0.0.0: the whole network)",
    )
    return p.parse_args(argv)


def _start_epoch(text):
    if not text:
        return int(time.time())
    from smartmeter.timeutil import epoch_from_fields

    date, _, clock = text.partition("T")
    y, mo, d = (int(x) for x in date.split("-"))
    h, mi, s = (int(x) for x in (clock or "00:00:00").split(":"))
    return epoch_from_fields((y, mo, d, h, mi, s))


def main(argv=None):
    args = parse_args(argv)
    with open(args.settings, encoding="utf-8") as f:
        values, problems = config_mod.parse_toml(f.read())
    for text in problems:
        print("settings: " + text, file=sys.stderr)
    if args.http_port is not None:
        values["WEB_PORT"] = args.http_port
    clock = SimClock(args.speed, _start_epoch(args.start))
    sim = Simulation(
        values,
        data_dir=args.data_dir,
        layout=args.layout,
        replay=args.replay,
        clock=clock,
        display=args.display,
        seed=args.seed,
        quiet=args.quiet,
        realtime=True,
        listen=args.listen,
    )
    sim.banner()
    try:
        sim.run(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
    print(sim.summary(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
