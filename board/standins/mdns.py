# SPDX-License-Identifier: MIT
"""``mdns`` stand-in: ``Server(network_interface)`` with ``hostname``, ``instance_name``,
``advertise_service``, ``find``.

Imitates adafruit/circuitpython shared-bindings/mdns/Server.c. The box has no multicast
network: nothing is announced, ``find`` finds nothing. Like a board, only one Server per
interface ("mDNS already initialized" is raised for a second one on espressif).
"""

_servers = []


class Server:
    def __init__(self, network_interface):
        if _servers:
            raise RuntimeError("mDNS already initialized")
        _servers.append(self)
        self.hostname = "cpy-box"
        self.instance_name = "CircuitPython"
        self.services = []

    def advertise_service(self, *, service_type, protocol, port, txt_records=None):
        self.services.append((service_type, protocol, port))

    def find(self, service_type, protocol, *, timeout=1):
        return ()

    def deinit(self):
        if self in _servers:
            _servers.remove(self)
