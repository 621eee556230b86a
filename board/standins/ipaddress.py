# SPDX-License-Identifier: MIT
"""``ipaddress`` stand-in: ``IPv4Address``, ``ip_address``.

Imitates adafruit/circuitpython shared-bindings/ipaddress/IPv4Address.c: built from a dotted
string, 4 bytes or an int; ``packed``, ``version``, ``str()``; equality with another address.
"""


class IPv4Address:
    def __init__(self, address):
        if isinstance(address, str):
            parts = address.split(".")
            if len(parts) != 4:
                raise ValueError("Not a valid IP string")
            packed = bytes(int(p) for p in parts)
        elif isinstance(address, int):
            packed = bytes((address >> s) & 255 for s in (24, 16, 8, 0))
        else:
            packed = bytes(address)
            if len(packed) != 4:
                raise ValueError("Address must be 4 bytes long")
        self.packed = packed
        self.version = 4

    def __str__(self):
        return "%d.%d.%d.%d" % tuple(self.packed)

    def __repr__(self):
        return "IPv4Address('%s')" % self

    def __eq__(self, other):
        return isinstance(other, IPv4Address) and other.packed == self.packed

    def __hash__(self):
        return hash(self.packed)


def ip_address(obj):
    return IPv4Address(obj)
