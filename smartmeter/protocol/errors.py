# SPDX-License-Identifier: MIT
"""One exception hierarchy, by pipeline stage.

Every error the protocol core raises is a :class:`MeterError`. Each subclass names the stage that
failed (``stage``) and carries a short message a user understands. Nothing else escapes the reader
or the decoder: IndexError, ValueError and struct.error from hostile input are turned into one of
these at the stage boundary.
"""


class MeterError(Exception):
    """Base class of every protocol-core error."""

    stage = "error"


class FrameError(MeterError):
    """Transport framing: bad checksum, stop byte, length, CRC or segment sequence."""

    stage = "framing"


class EnvelopeError(MeterError):
    """The DLMS envelope (general-glo-ciphering header) is malformed."""

    stage = "envelope"


class WrongKeyError(MeterError):
    """Decryption gave implausible plaintext: almost always a wrong meter key."""

    stage = "wrong_key"


class TagMismatchError(MeterError):
    """The GCM authentication tag does not match (wrong key, wrong auth key or corruption)."""

    stage = "tag_mismatch"


class AuthKeyMissingError(MeterError):
    """The telegram carries a GCM tag but no authentication key is configured."""

    stage = "auth_key_missing"


class ParseError(MeterError):
    """The decrypted APDU is not a well-formed A-XDR data-notification."""

    stage = "parse"


class LayoutError(MeterError):
    """The data-notification body has a shape no known layout matches."""

    stage = "layout"


class KeyFormatError(MeterError):
    """A key setting is not 16 bytes of hex. The message names the setting, never the value."""

    stage = "config"


class DuplicateError(MeterError):
    """The frame counter repeats the previous telegram's: a duplicate, dropped."""

    stage = "duplicate"
