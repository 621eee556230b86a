# SPDX-License-Identifier: MIT
"""Board entry point: settings -> hardware -> app -> run forever.

Bad settings never stop the board: they are reported on the display, the serial console and the
web page, and the firmware runs on with what works (see smartmeter/config.py).
"""

import os
import sys


def main():
    from smartmeter import app, config, hardware

    cfg = config.load(os.getenv)
    hw = hardware.build(cfg)
    if hw.mount is not None:
        # The web settings page stores its changes on the SD card (CIRCUITPY is read-only to
        # code while USB is connected); they override settings.toml.
        try:
            hw.mount()
            with open("/sd/" + app.OVERRIDE_NAME) as f:
                overrides, problems = config.parse_toml(f.read())
            cfg = config.load(os.getenv, overrides)
            cfg.problems.extend(problems)
        except OSError:
            pass  # no card or no override file: settings.toml alone
    hw.fs = app.device_fs()
    firmware = app.build(hw, cfg)
    firmware.state.reset_reason = hardware.reset_reason()
    for problem in hw.problems:
        firmware.state.last_errors["hardware"] = problem
        print("hardware:", problem)
    firmware.run()


# CircuitPython runs this file; on a PC the name "code" belongs to the standard library (pdb
# imports it), so importing this file there must do nothing.
if sys.implementation.name == "circuitpython":
    main()
