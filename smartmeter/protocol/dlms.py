# SPDX-License-Identifier: MIT
"""From a reassembled application payload to a :class:`~smartmeter.protocol.reading.Reading`.

Stages, each with its own error class and counter: envelope (general-glo-ciphering header),
duplicate/replay check, decryption + tag check, plausibility of the plaintext ("wrong key?"),
A-XDR parse, layout. The plaintext buffer is preallocated once per decoder.
"""

from . import fastpath, layouts
from .axdr import Parser, parse_datetime
from .errors import (
    AuthKeyMissingError,
    DuplicateError,
    EnvelopeError,
    MeterError,
    ParseError,
    WrongKeyError,
)
from .reading import SECURITY_UNCHECKED, Reading, screen, security_name

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_GLO_CIPHERING = const(0xDB)
_DATA_NOTIFICATION = const(0x0F)
_TAG_LEN = const(12)
_DSMR_START = const(0x2F)  # "/": a DSMR telegram inside the envelope (T210-D-r)
_MAX_PLAINTEXT = const(2048)  # largest APDU the transport reader can reassemble

# Counter names, in the order /api/status shows them (same names as state.Counters)
COUNTERS = (
    "telegrams",
    "decoded",
    "envelope_errors",
    "wrong_key",
    "tag_mismatch",
    "auth_key_missing",
    "parse_errors",
    "layout_errors",
    "duplicates",
    "counter_resets",
    "implausible",  # values dropped from decoded telegrams (reading.screen: 4294967295 W ...)
)
_STAGE_COUNTER = {
    "envelope": "envelope_errors",
    "wrong_key": "wrong_key",
    "tag_mismatch": "tag_mismatch",
    "auth_key_missing": "auth_key_missing",
    "parse": "parse_errors",
    "layout": "layout_errors",
    "duplicate": "duplicates",
}


class Envelope:
    """The parsed general-glo-ciphering header (no copies of the ciphertext)."""

    __slots__ = ("system_title", "security", "frame_counter", "start", "end", "tag_start")

    def __init__(self, payload):
        n = len(payload)
        if n < 2 or payload[0] != _GLO_CIPHERING:
            raise EnvelopeError("not an encrypted DLMS telegram (no 0xDB tag)")
        if payload[1] != 8:
            raise EnvelopeError("system title length is not 8")
        if n < 16:
            raise EnvelopeError("DLMS header truncated")
        self.system_title = bytes(payload[2:10])
        length = payload[10]
        p = 11
        if length == 0x81:
            length = payload[11]
            p = 12
        elif length == 0x82:
            length = (payload[11] << 8) | payload[12]
            p = 13
        elif length >= 0x80:
            raise EnvelopeError("unsupported DLMS length form")
        if length != n - p:
            raise EnvelopeError("DLMS length does not match the telegram")
        if n < p + 5:
            raise EnvelopeError("DLMS header truncated")
        self.security = payload[p]
        self.frame_counter = (
            (payload[p + 1] << 24) | (payload[p + 2] << 16) | (payload[p + 3] << 8) | payload[p + 4]
        )
        p += 5
        if not self.security & 0x20:
            raise EnvelopeError("telegram is not encrypted (security 0x%02X)" % self.security)
        self.start = p
        self.end = n
        self.tag_start = n
        if self.security & 0x10:
            self.tag_start = n - _TAG_LEN
            if self.tag_start < self.start:
                raise EnvelopeError("telegram too short for its tag")


class Decoder:
    """Decrypts and decodes telegrams for one meter key; counts every stage.

    :param gcm: a ``crypto.Gcm`` for the meter key (and auth key), or None for plaintext-only use
    :param layout: "auto" or a name from ``layouts.LAYOUTS`` (the METER_LAYOUT setting)
    """

    def __init__(self, gcm=None, layout="auto"):
        self.gcm = gcm
        self.layout = layout
        self._plain = bytearray(_MAX_PLAINTEXT)
        self._template = None  # the learned shape of this meter's telegrams (fastpath.py)
        self._walked = -1  # length of the last APDU the general walk decoded (learning is next)
        self._dsmr_walked = -1
        self._oms_walked = -1
        self._dsmr_template = None  # the same for DSMR text telegrams (dsmr.py)
        self._oms_template = None  # and for AMIS record lists (oms.py)
        self._iv = bytearray(16)  # AMIS CBC IV
        self.learn = True  # learn templates (tests switch it off to compare both paths)
        self.fast = 0  # telegrams decoded by the learned template
        self._last_title = None
        self._last_counter = None
        for name in COUNTERS:
            setattr(self, name, 0)
        self.last_error = None  # the last MeterError, for status displays
        self.last_implausible = None  # "1-0:1.7.0 = 4294967295 dropped (implausible)"

    def decode(self, payload, transport=None):
        """Decode one application payload (DB envelope, or a plain 0F data-notification).

        :param transport: the reader's transport name; ``"oms"`` is an AMIS SND_UD frame
            (:mod:`~smartmeter.protocol.oms`), anything else a DLMS payload whose decrypted
            content is a data-notification or DSMR text (:mod:`~smartmeter.protocol.dsmr`)
        :returns: a Reading
        :raises MeterError: a subclass naming the stage; the matching counter is incremented
        """
        self.telegrams += 1
        try:
            if transport == "oms":
                from . import oms

                reading = oms.decode(payload, self)
            else:
                reading = self._decode(payload)
        except MeterError as exc:
            self.last_error = exc
            name = _STAGE_COUNTER.get(exc.stage)
            if name:
                setattr(self, name, getattr(self, name) + 1)
            raise
        self.decoded += 1
        n, text = screen(reading)  # values a meter cannot mean are absent, counted and named
        if n:
            self.implausible += n
            self.last_implausible = text
        return reading

    def _decode(self, payload):
        if len(payload) and payload[0] == _DATA_NOTIFICATION:
            reading = self.decode_apdu(payload)
            reading.security = "plain"
            return reading
        env = Envelope(payload)
        title, fc = env.system_title, env.frame_counter
        if title == self._last_title and self._last_counter is not None:
            if fc == self._last_counter:
                raise DuplicateError("repeated frame counter %d: duplicate dropped" % fc)
        if self.gcm is None:
            raise AuthKeyMissingError("no meter key configured")
        n = env.tag_start - env.start
        plain = memoryview(self._plain)[:n]
        mv = memoryview(payload)
        tag = mv[env.tag_start : env.end] if env.security & 0x10 else None
        # Authentication key policy: without METER_AUTH_KEY a tagged telegram is decrypted
        # anyway and marked "tag not checked"; with it, a bad tag is rejected.
        unchecked = tag is not None and self.gcm.auth_key is None
        if unchecked:
            tag = None
        self.gcm.decrypt_into(title, fc, env.security, mv[env.start : env.tag_start], plain, tag)
        reading = self.decode_plain(plain, authenticated=tag is not None)
        reading.system_title = title
        reading.frame_counter = fc
        if unchecked:
            reading.security = SECURITY_UNCHECKED
            self.auth_key_missing += 1  # telegrams decoded whose tag could not be checked
        else:
            reading.security = security_name(env.security)
        if title == self._last_title and self._last_counter is not None and fc < self._last_counter:
            self.counter_resets += 1  # meter replaced or reset: reported, reading kept
        self._last_title = title
        self._last_counter = fc
        return reading

    def decode_plain(self, plain, authenticated=False):
        """Decode decrypted content: a DLMS data-notification, or DSMR text (T210-D-r)."""
        if len(plain) and plain[0] == _DSMR_START:
            from . import dsmr

            return dsmr.decode(plain, self, authenticated)
        return self.decode_apdu(plain, authenticated)

    def decode_apdu(self, apdu, authenticated=False):
        """Decode a plaintext data-notification APDU (``0F ...``) into a Reading.

        Unauthenticated plaintext that does not even start like a data-notification is reported
        as a wrong key: a wrong key yields random bytes, which is the only likely cause once the
        transport checksum has passed.
        """
        n = len(apdu)
        tpl = self._template
        if tpl is not None and tpl.length == n:
            reading = Reading()
            try:
                if tpl.decode(apdu, reading):
                    self.fast += 1
                    reading.derive()
                    return reading
            except MeterError:
                pass  # the general path below reports it properly
        if n < 7 or apdu[0] != _DATA_NOTIFICATION:
            if authenticated:
                raise ParseError("not a data-notification")
            raise WrongKeyError("decrypted data is not a meter reading: wrong key?")
        reading = Reading()
        p = Parser(apdu, 5)  # skip tag and long-invoke-id-and-priority
        dt_len = apdu[5]
        if dt_len == 0x0C and n >= 18:
            raw = bytes(apdu[6:18])
            try:
                reading.meter_time, reading.utc_offset, reading.dst = parse_datetime(raw)
            except ParseError:
                if not authenticated:
                    raise WrongKeyError("decrypted data has no valid time: wrong key?") from None
                raise
            p.pos = 18
        elif dt_len == 0x00:
            p.pos = 6
        elif dt_len == 0x09 and n >= 19 and apdu[6] == 0x0C:  # date-time as tagged octet-string
            reading.meter_time, reading.utc_offset, reading.dst = parse_datetime(bytes(apdu[7:19]))
            p.pos = 19
        else:
            if authenticated:
                raise ParseError("data-notification date-time malformed")
            raise WrongKeyError("decrypted data is not a meter reading: wrong key?")
        # Learn from the second telegram of this length: the first one is shown sooner (and a
        # capture decoded once, e.g. by the CLI, never pays for learning a shape)
        plan = [] if self.learn and self._walked == n else None
        leaves = [] if plan is not None else None
        body, shape = p.walk(leaves)  # one pass: values, and leaf offsets when learning
        if p.pos != n:
            raise ParseError("%d unexpected bytes after the data" % (n - p.pos))
        header_time = reading.meter_time is not None
        reading.layout = layouts.apply(body, reading, self.layout, shape, plan)
        if plan is not None and dt_len in (0x0C, 0x00):
            self._template = fastpath.learn(apdu, leaves, plan, reading.layout, header_time)
        self._walked = n
        reading.derive()
        return reading
