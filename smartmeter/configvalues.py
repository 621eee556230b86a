# SPDX-License-Identifier: MIT
"""The settings as the running board keeps them: a :class:`Config` of plain attributes.

Reading and checking the settings (:mod:`smartmeter.config`: every setting's kind, default and
limits, the TOML reader, the override files) is work of the boot and of the web settings page.
On a board without the web page those modules leave the heap once the parts are built
(``app.drop_settings_code``, about 16 KB in the CircuitPython VM), so what runs afterwards must
not hold a function of theirs: this module is all the loop needs of the settings.
"""

from .linesearch import FIXED as _LINE


class Config:
    """Validated settings as attributes named like the keys (``config.WEB_PORT``).

    ``Config()`` has every default (:func:`smartmeter.config.load` makes the one the board runs
    on). :ivar problems: list of "KEY: what is wrong" texts (never containing a secret value)
    """

    def __init__(self):
        from .config import defaults  # the settings table: boot and tests, never the loop

        defaults(self)
        self.problems = []

    def __repr__(self):
        # Never show secrets, even by accident in a traceback or a debug print.
        return "<Config %d problems>" % len(self.problems)

    @property
    def baudrate(self):
        """The UART speed: METER_BAUD, or the transport's standard speed."""
        if self.METER_BAUD:
            return self.METER_BAUD
        return _LINE.get(self.METER_TRANSPORT, _LINE["mbus"])[0]

    @property
    def parity(self):
        """ "even" | "none" | "odd": M-Bus and AMIS 8E1, HDLC and raw 8N1 unless METER_PARITY
        says otherwise."""
        if self.METER_PARITY != "auto":
            return self.METER_PARITY
        return _LINE.get(self.METER_TRANSPORT, _LINE["mbus"])[1]

    @property
    def reader_transport(self):
        """What the transport reader hunts: "auto" | "mbus" | "hdlc" | "raw" (AMIS is M-Bus)."""
        line = _LINE.get(self.METER_TRANSPORT)
        return line[2] if line is not None else "auto"

    @property
    def line_search(self):
        """True when the line settings are searched (METER_TRANSPORT auto, no baud/parity)."""
        return (
            self.METER_TRANSPORT == "auto" and not self.METER_BAUD and self.METER_PARITY == "auto"
        )


# Network outputs: (module in smartmeter/outputs/ with make(app, hw, cfg, state), the setting
# that turns it on, its name on screen). A new output is one module, its SCHEMA rows (config.py)
# and a line here; assemble.build starts it, its status shows everywhere (state.add_sink).
OUTPUTS = (
    ("graphite", "GRAPHITE_HOST", "Graphite"),
    ("mqtt", "MQTT_HOST", "MQTT"),
    ("influx", "INFLUX_URL", "InfluxDB"),
)

# Where the board keeps its own files on the SD card (settings slots, the generated web password,
# the usage summary): a dot-folder, so no web file route can name it (``web.files.safe_name``
# refuses a leading dot) whatever LOG_DIR is.
PRIVATE_DIR = "/sd/.smartmeter"
# Where firmware from before 2026-11 kept the settings override and the web password (beside the
# logs): the CSV log's housekeeping must never take them for uploads.
LEGACY_OVERRIDE = "/sd/smartmeter.toml"
LEGACY_WEB_PASSWORD = "/sd/webpass.txt"


def write_private(fs, path, data):
    """Write ``data`` (bytes, or a list of bytes and int32 arrays in file order) whole to
    ``path`` in the board's private folder (made when missing), then flush and sync it. Used
    for the settings slots, the usage summary and the web password.

    :raises OSError: from the card
    """
    try:
        fs.stat(PRIVATE_DIR)
    except OSError:
        fs.mkdir(PRIVATE_DIR)
    f = fs.open(path, "wb")
    try:
        for piece in data if isinstance(data, list) else (data,):
            if isinstance(piece, (bytes, bytearray)):
                mv = memoryview(piece)
                while mv:
                    n = f.write(mv)
                    mv = mv[len(mv) if n is None else n :]
            else:  # an int32 array (the usage summary's rings): written as it is, at once
                n = f.write(piece)
                if n is not None and n != 4 * len(piece):
                    raise OSError(28, "short write")  # ENOSPC: the card is full
        f.flush()
        sync = getattr(fs, "sync", None)
        if sync is not None:
            sync(f)
    finally:
        f.close()
