# SPDX-License-Identifier: MIT
"""Setup mode: an access point with the settings page when there is no working WiFi.

Like the original's WiFiManager portal, but it never blocks the loop and the meter keeps being
logged: the AP opens when no WiFi is configured, when the configured one has not been connected
for ``grace_ms`` (3 minutes), or on request (menu / web button, for ``portal_ms``). The station
keeps retrying meanwhile (the app's reconnect); once it is connected and no request is pending
the AP closes. The AP is named ``<HOSTNAME>-setup`` and protected by AP_PASSWORD or a random
password generated at start, shown on the display's system screen (``state.ap_password``) and
nowhere else. The web server listens on all interfaces, so the settings page is at the AP's
address (192.168.4.1 on the ESP32); ``/`` serves it while the AP is up.

The radio object needs ``connected`` and ``start_ap(ssid, password)`` / ``stop_ap()``; an
optional ``start_mdns(hostname)`` is called once connected (``mdns.Server`` on the device:
``smartmeter.local``).
"""

import os

from .timeutil import Backoff, ticks_add, ticks_diff

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_GRACE_MS = const(180_000)
_PORTAL_MS = const(600_000)
_RETRY_MS = const(30_000)  # after a failed start_ap
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def random_password(length=10):
    """A password from an unambiguous alphabet: ``os.urandom`` (the ESP32's hardware RNG), or
    ``random`` where a port lacks it."""
    try:
        raw = os.urandom(length)
    except (AttributeError, NotImplementedError):
        import random

        raw = bytes(random.getrandbits(8) for _ in range(length))
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in raw)


class NetSetup:
    """Opens and closes the setup access point; call ``poll(now_ms)`` every loop pass.

    :param config: Config (CIRCUITPY_WIFI_SSID, HOSTNAME, AP_PASSWORD)
    :param state: State (ap_mode, ap_ssid, ap_password, hostname are written)
    :param radio: radio view (see module docstring) or None (no WiFi hardware: does nothing)
    :param now_ms: ticks at start (the grace period counts from here)
    """

    name = "netsetup"

    def __init__(self, config, state, radio, now_ms=0, grace_ms=_GRACE_MS, portal_ms=_PORTAL_MS):
        self.config = config
        self.state = state
        self.radio = radio
        self.grace_ms = grace_ms
        self.portal_ms = portal_ms
        self.hostname = config.HOSTNAME or "smartmeter"
        self.ssid = self.hostname + "-setup"
        password = config.AP_PASSWORD
        if not password or len(password) < 8:  # WPA2 needs 8..63 characters
            password = random_password(10)
        self.password = password
        self.active = False
        self.starts = 0
        self.stops = 0
        self.mdns = False
        self._last_ok = now_ms
        self._forced_until = None
        self._retry = Backoff(_RETRY_MS, _RETRY_MS)  # between failed start_ap() calls
        state.hostname = self.hostname

    def request(self, now_ms):
        """Open the AP now (menu or web button) for ``portal_ms``."""
        self._forced_until = ticks_add(now_ms, self.portal_ms)
        self._retry.ok()

    def _want(self, now, connected):
        if self._forced_until is not None:
            if ticks_diff(now, self._forced_until) < 0:
                return True
            self._forced_until = None
        if not self.config.CIRCUITPY_WIFI_SSID:
            return True
        return not connected and ticks_diff(now, self._last_ok) >= self.grace_ms

    def poll(self, now_ms):
        """Start or stop the AP as the WiFi state requires; never raises."""
        radio = self.radio
        if radio is None:
            return
        try:
            connected = bool(radio.connected)
        except Exception:  # noqa: BLE001 - a radio fault reads as "not connected"
            connected = False
        if connected:
            self._last_ok = now_ms
            if not self.mdns:
                start = getattr(radio, "start_mdns", None)
                if start is not None:
                    try:
                        start(self.hostname)
                        self.mdns = True
                    except Exception as exc:  # noqa: BLE001
                        self.state.last_errors["mdns"] = str(exc)[:80]
                else:
                    self.mdns = True
        want = self._want(now_ms, connected)
        if want and not self.active:
            if not self._retry.due(now_ms):
                return
            try:
                radio.start_ap(self.ssid, self.password)
            except Exception as exc:  # noqa: BLE001
                self.state.last_errors["setup"] = str(exc)[:80]
                self._retry.fail(now_ms)
                return
            self._retry.ok()
            self.active = True
            self.starts += 1
        elif not want and self.active and connected:
            try:
                radio.stop_ap()
            except Exception as exc:  # noqa: BLE001
                self.state.last_errors["setup"] = str(exc)[:80]
            self.active = False
            self.stops += 1
        st = self.state
        st.ap_mode = self.active
        st.ap_ssid = self.ssid if self.active else None
        st.ap_password = self.password if self.active else None
