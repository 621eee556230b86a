# SPDX-License-Identifier: MIT
"""Smart meter logger firmware for Austrian meters (customer interface, DLMS push telegrams).

Importing the package is cheap: submodules are imported where they are used, so the device
loads only what it runs.
"""

__version__ = "0.1.0"


def decode(data, key, auth_key=None, **kwargs):
    """Decode a captured byte stream; see :func:`smartmeter.protocol.pipeline.decode`."""
    from .protocol.pipeline import decode as _decode

    return _decode(data, key, auth_key, **kwargs)
