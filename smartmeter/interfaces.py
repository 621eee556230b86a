# SPDX-License-Identifier: MIT
"""Every interface the firmware is given, in one place.

``Hardware`` is the one object the app receives (``smartmeter.device`` fills it on the board,
``sim.hardware`` on a PC, tests with fakes). The other classes are duck-typed stubs in the
manner of adafruit_httpserver's ``interfaces.py``: they list exactly the methods our code
calls, so a fake for a host test implements only these. Nothing inherits from them and no
product module imports them; ``tests/host/test_interfaces.py`` checks the board's, the
simulator's and the tests' objects against them. Device code imports only ``Hardware``, from
``smartmeter.hardware`` (this module is never loaded on the board).

Time: a *clock* is an object (``Clock``); a *ticks_ms* is a callable returning ticks; ticks are
milliseconds that wrap at 2**29 (``supervisor.ticks_ms()``) - use ``timeutil.ticks_diff``.
"""

from .hardware import Hardware  # noqa: F401 - the one object; its own module (7 KiB less heap)


# -- stubs: documentation and conformance tests only (never imported on the device) ------------
class Clock:
    """The app's time."""

    def ticks_ms(self):
        """Monotonic milliseconds, wrapping at 2**29."""

    def time(self):
        """UTC epoch seconds, or None while the RTC is not set."""

    def sync_ntp(self, server):
        """Optional: set the RTC from ``server``; True on success."""

    def wall_ms(self):
        """Optional: real milliseconds (wrapping like ``ticks_ms``) where ``ticks_ms`` runs faster
        (the simulator's ``--speed``); the web server's network budgets use it."""


class Uart:
    """``busio.UART`` with ``timeout=0``."""

    def readinto(self, buf):
        """Copy waiting bytes into ``buf``; the count, or None/0 when nothing is there."""

    def write(self, buf):
        """Send ``buf`` on the TX pin (only called when ``Hardware.meter_tx``)."""


class LineMemory:
    """Where the board keeps the line setting that worked last (``microcontroller.nvm``)."""

    def load(self):
        """The index into ``linesearch.LINES`` saved last, or None."""

    def save(self, index):
        """Keep ``index`` across resets."""


class File:
    """A file of ``Fs.open``."""

    def read(self, n):
        """Up to ``n`` bytes (b"" at the end)."""

    def write(self, buf):
        """Write ``buf``; the bytes written. Raises OSError (ENOSPC, EIO)."""

    def seek(self, pos):
        """Move to absolute byte ``pos``."""

    def flush(self):
        """Hand buffered bytes to the filesystem."""

    def close(self):
        """Close the file."""


class Fs:
    """The SD card as ``datalog.sd`` uses it; every path absolute."""

    def open(self, path, mode):
        """A ``File``; mode is "rb", "ab", "r+b" or "wb"."""

    def listdir(self, path):
        """Names in directory ``path``."""

    def remove(self, path):
        """Delete file ``path``."""

    def mkdir(self, path):
        """Create directory ``path``."""

    def stat(self, path):
        """``os.stat`` tuple (size at index 6)."""

    def statvfs(self, path):
        """``os.statvfs`` tuple (frsize 1, blocks 2, bavail 4)."""

    def sync(self, f=None):
        """Make what was written durable."""


class Socket:
    """A TCP socket of ``Pool.socket``."""

    def settimeout(self, seconds):
        """Blocking time limit of each call (0: non-blocking)."""

    def connect(self, address):
        """Connect to ``address`` (the fifth item of a ``getaddrinfo`` entry)."""

    def send(self, buf):
        """Send from ``buf``; the bytes sent."""

    def recv_into(self, buf, n=0):
        """Receive into ``buf``; the count (0: closed)."""

    def close(self):
        """Close the socket."""


class Pool:
    """``socketpool.SocketPool`` on the board, the ``socket`` module on a PC."""

    AF_INET = 2
    SOCK_STREAM = 1

    def getaddrinfo(self, host, port):
        """``[(family, type, proto, canonname, address), ...]``; raises when unresolvable."""

    def socket(self, family, kind):
        """A new ``Socket``."""


class Radio:
    """The WiFi view of ``device.Radio`` and ``sim.hardware.SimRadio``."""

    connected = False
    ip = None
    rssi = None

    def reconnect(self):
        """Start joining the configured network again (non-blocking)."""

    def start_ap(self, ssid, password):
        """Open the setup access point."""

    def stop_ap(self):
        """Close the setup access point."""

    def start_mdns(self, hostname):
        """Advertise ``hostname``.local."""


class Display:
    """A displayio display (``adafruit_st7735r.ST7735R``)."""

    root_group = None
    brightness = 1.0
    auto_refresh = True

    def refresh(self):
        """Draw the changed areas now."""


class Keys:
    """``keypad.Keys``: ``events.get()`` returns an event with key_number/pressed, or None."""

    events = None


class Console:
    """The serial console."""

    def read_char(self):
        """One typed character, or None (never blocks)."""

    def write(self, line):
        """Print one line."""


class Watchdog:
    """``microcontroller.watchdog`` in RESET mode."""

    def feed(self):
        """The pass completed: restart the timeout."""


class Output:
    """A part the loop drives (outputs, CSV, display, web, sensor, setup access point).

    Register a status entry with ``state.add_sink(name, PROBLEMS)`` and keep it current: the
    status screen, the web page and ``/api/status``, the serial status line and the problem
    list show it with no other edit. Each call below is isolated by the app: an exception is
    counted in ``sink_errors`` and kept under ``name`` in ``state.last_errors``.
    """

    name = "output"

    def on_reading(self, reading, epoch_utc, extras):
        """Optional. One decoded telegram: queue only, no I/O (``epoch_utc`` None: clock unset)."""

    def poll(self, now_ms):
        """Optional. The timed work of one loop pass; must return within about a second."""
