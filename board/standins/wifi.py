# SPDX-License-Identifier: MIT
"""``wifi`` stand-in: ``radio`` (the station and access point), ``Network``, ``AuthMode``.

Imitates adafruit/circuitpython shared-bindings/wifi/Radio.c (ports/espressif/common-hal/wifi):
``connect(ssid, password=b"", *, channel=0, bssid=None, timeout=None)`` raises
ConnectionError("No network with that ssid") or ConnectionError("Authentication failure");
``connected``, ``ipv4_address`` (an ``ipaddress.IPv4Address`` or None), ``ap_info`` (None when
not connected), ``hostname``, ``mac_address``, ``enabled``, ``start_ap``/``stop_ap``,
``ipv4_address_ap``, ``ping``. The box's WiFi world is one network (``CONFIG["wifi"]``: ssid,
password) whose DHCP gives the board 127.0.0.1, so only this PC reaches it; without that setting
no network is in range. Boot connects with CIRCUITPY_WIFI_SSID/PASSWORD from settings.toml
before code.py runs, as CircuitPython does.
"""

import ipaddress

import _box


class AuthMode:
    OPEN = "wifi.AuthMode.OPEN"
    WPA2 = "wifi.AuthMode.WPA2"
    PSK = "wifi.AuthMode.PSK"


class Network:
    def __init__(self, ssid):
        self.ssid = ssid
        self.bssid = b"\x02\x00\x00\x00\x00\x01"
        self.rssi = -55
        self.channel = 6
        self.country = "AT"
        self.authmode = (AuthMode.WPA2, AuthMode.PSK)


class Radio:
    def __init__(self):
        self.enabled = True
        self.hostname = "espressif"
        self.mac_address = b"\x02\x00\x00\x00\x00\x02"
        self.tx_power = 20.0
        self._ssid = None
        self._ap = None

    @property
    def connected(self):
        return self._ssid is not None

    @property
    def ipv4_address(self):
        return ipaddress.IPv4Address("127.0.0.1") if self._ssid is not None else None

    @property
    def ipv4_address_ap(self):
        return ipaddress.IPv4Address("192.168.4.1") if self._ap is not None else None

    @property
    def ipv4_gateway(self):
        return ipaddress.IPv4Address("127.0.0.1") if self._ssid is not None else None

    @property
    def ipv4_dns(self):
        return self.ipv4_gateway

    @property
    def ap_info(self):
        return Network(self._ssid) if self._ssid is not None else None

    @property
    def ap_active(self):
        return self._ap is not None

    def connect(self, ssid, password=b"", *, channel=0, bssid=None, timeout=None):
        if not self.enabled:
            raise RuntimeError("WiFi is off")
        if isinstance(ssid, bytes):
            ssid = ssid.decode()
        if isinstance(password, bytes):
            password = password.decode()
        if not 1 <= len(ssid) <= 32:
            raise ValueError("ssid length must be 1-32")
        if password and not 8 <= len(password) <= 64:
            raise ValueError("password length must be 8-64")
        world = _box.CONFIG.get("wifi")
        if not world or world.get("ssid") != ssid:
            # the station scans for the whole timeout before it gives up
            _box.sleep_board(min(timeout or 8, 8))
            raise ConnectionError("No network with that ssid")
        if (world.get("password") or "") != (password or ""):
            raise ConnectionError("Authentication failure")
        self._ssid = ssid

    def disconnect(self):
        self._ssid = None

    def start_ap(self, ssid, password=b"", *, channel=1, authmode=(), max_connections=4):
        if password and not 8 <= len(password) <= 64:
            raise ValueError("password length must be 8-64")
        self._ap = ssid

    def stop_ap(self):
        self._ap = None

    def ping(self, ip, *, timeout=0.5):
        return 0.001 if self._ssid is not None else None

    def start_scanning_networks(self, *, start_channel=1, stop_channel=11):
        world = _box.CONFIG.get("wifi")
        return iter([Network(world["ssid"])] if world else [])

    def stop_scanning_networks(self):
        pass


radio = Radio()
