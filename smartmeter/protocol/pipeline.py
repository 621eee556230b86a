# SPDX-License-Identifier: MIT
"""Bytes in, readings out: the transport reader and the decoder wired together.

The app loop and the command-line decoder both use this, so the device and a support session on
a PC decode a capture the same way.
"""

from .crypto import Gcm
from .dlms import Decoder
from .errors import MeterError
from .transport import FrameReader


class Pipeline:
    """Feed raw UART bytes; get a callback per reading and per failed frame or telegram.

    :param key: 16-byte meter key (bytes) or None (then only plain telegrams decode)
    :param auth_key: 16-byte authentication key or None
    :param on_reading: ``on_reading(reading)`` for each decoded telegram
    :param on_error: ``on_error(exc)`` for each failed frame or telegram (a MeterError)
    :param transport: "auto" | "mbus" | "hdlc" | "raw" (``transport.TRANSPORTS``)
    :param on_ack: optional ``on_ack()``: send one ``E5`` to the meter now (AMIS, see
        :class:`~smartmeter.protocol.transport.FrameReader`); or poll ``reader.take_acks()``
    :param layout: "auto" or a layout name
    """

    def __init__(
        self,
        key,
        auth_key=None,
        on_reading=None,
        on_error=None,
        transport="auto",
        layout="auto",
        aes_backend=None,
        on_ack=None,
    ):
        gcm = Gcm(key, auth_key, aes_backend) if key else None
        self.decoder = Decoder(gcm, layout)
        self.on_reading = on_reading
        self.on_error = on_error
        self.reader = FrameReader(self._telegram, transport, on_error, on_ack)

    def feed(self, data):
        """Feed any number of bytes (any chunking); callbacks fire synchronously."""
        self.reader.feed(data)

    def _telegram(self, payload, transport):
        try:
            reading = self.decoder.decode(payload, transport)
        except MeterError as exc:
            if self.on_error is not None:
                self.on_error(exc)
            # a raw burst that does not decode may have been a false start: let the reader
            # look inside it (a repeated frame counter is a real burst, though)
            return exc.stage == "duplicate"
        if self.on_reading is not None:
            self.on_reading(reading)
        return True


def decode(data, key, auth_key=None, plaintext=False, layout="auto", transport="auto"):
    """Decode a captured byte stream (or, with ``plaintext``, one decrypted APDU).

    :param data: bytes
    :param key: meter key as bytes or hex text (None for plaintext)
    :param auth_key: authentication key as bytes or hex text, or None
    :returns: a list with one entry per telegram in stream order: a Reading, or the MeterError
        that telegram (or frame) failed with
    :raises KeyFormatError: if a key is not 16 bytes
    """
    from .crypto import parse_key

    if isinstance(key, str):
        key = parse_key(key, "key")
    if isinstance(auth_key, str):
        auth_key = parse_key(auth_key, "auth key")
    results = []
    if plaintext:
        try:
            results.append(Decoder(None, layout).decode_apdu(data))
        except MeterError as exc:
            results.append(exc)
        return results
    pipe = Pipeline(key, auth_key, results.append, results.append, transport, layout)
    pipe.feed(data)
    if transport == "auto" and not pipe.reader.frames_ok and not pipe.reader.bad_bodies:
        # no M-Bus or HDLC frame at all, not even a damaged one: unframed GCM bursts
        # (T210-D-r) are tried
        raw = []
        pipe = Pipeline(key, auth_key, raw.append, raw.append, "raw", layout)
        pipe.feed(data)
        if pipe.reader.telegrams:
            return raw
    return results
