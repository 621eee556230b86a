# SPDX-License-Identifier: MIT
"""``Hardware``: the one object the app receives (see ``smartmeter.interfaces`` for the rest).

Its own module so the device loads only this class: ``smartmeter.interfaces`` holds the
documentation stubs (about 7 KiB of heap as ``.mpy``, measured by ``bench/mpy_imports.py``) and is
never imported on the board.
"""

try:
    from typing import Any  # noqa: F401 - annotations only
except ImportError:  # CircuitPython
    pass


class Hardware:
    """What the app receives: each attribute None where that hardware is absent.

    Keyword arguments set attributes; an unknown name is an error.
    """

    uart: "Any" = None  # Uart
    set_line: "Any" = None  # callable set_line(baudrate, parity) -> the Uart to use from now on
    meter_tx: "Any" = False  # True: the Uart has a TX pin (PIN_METER_TX) for M-Bus E5 answers
    line_memory: "Any" = None  # LineMemory: the line setting that worked last
    display: "Any" = None  # Display
    keys: "Any" = None  # Keys
    i2c: "Any" = None  # busio.I2C-like: try_lock, unlock, writeto, writeto_then_readfrom
    fs: "Any" = None  # Fs
    mount: "Any" = None  # callable: (re)mount the SD card, raises OSError without a card
    log_dir: "Any" = None  # absolute directory of the day files, e.g. "/sd/logs"
    pool: "Any" = None  # Pool
    radio: "Any" = None  # Radio
    clock: "Any" = None  # Clock
    watchdog: "Any" = None  # Watchdog
    console: "Any" = None  # Console
    reset: "Any" = None  # callable reset(why): log and reset the board
    mem_free: "Any" = None  # callable: free heap bytes
    aes_backend: "Any" = None  # "aesio" | "cryptography" | "python" | None (best available)
    ssl_context: "Any" = None  # for MQTT_TLS

    def __init__(self, **kw):
        for name, value in kw.items():
            if name.startswith("_") or not hasattr(Hardware, name):
                raise TypeError("unknown hardware attribute " + name)
            setattr(self, name, value)
