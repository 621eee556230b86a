# SPDX-License-Identifier: MIT
"""A virtual meter: a plausible Austrian household day, pushed as real encrypted telegrams.

Base load and a fridge cycle, morning and evening peaks, random appliances (kettle, oven,
washing machine), a PV export hump at midday that follows the season, three phases, and energy
counters that integrate the power exactly (integer Wh). Deterministic for a seed.
"""

import math
import random

from smartmeter.protocol import reading as r
from smartmeter.protocol.crypto import Gcm
from smartmeter.timeutil import fields_from_epoch, vienna_offset_at

from . import frames, telegrams

# layout -> (transport, system title, security byte); the layout names are the decoder's
# (smartmeter.protocol.layouts.LAYOUTS): ``layouts()`` lists those the virtual meter can send.
PROFILES = {
    "netznoe": ("mbus", b"KFM\x67\x50\x00\x08\x81", 0x20),
    "tinetz": ("mbus", b"KFM\x10\x20\x02\x98\x02", 0x21),
    "burgenland": ("hdlc", b"LGZ\x67\x72\xa9\xa1\x11", 0x30),
    "kng": ("hdlc", b"ISK\x69\x74\xac\x00\x8f", 0x20),
    "obis-pairs": ("gbt", b"LGZ\x67\x73\x7c\x7e\x8e", 0x30),
    "wienernetze": ("hdlc-wn", b"ISK\x69\x74\xa8\xd8\x99", 0x20),
    "e450-list": ("gbt", b"LGZ\x67\x73\x62\xf1\x3a", 0x30),
    "t210dr": ("raw", b"SAG5\x00\x03\x3f\xe2", 0x30),
    "amis": ("amis", None, None),
}
# transport -> the meter's line setting (baud rate, parity), as on the real interfaces
LINE = {
    "mbus": (2400, "even"),
    "hdlc": (9600, "none"),
    "hdlc-wn": (9600, "none"),
    "gbt": (9600, "none"),
    "amis": (9600, "even"),
    "raw": (115200, "none"),
}
BAUD = {name: line[0] for name, line in LINE.items()}
INTERVAL_MS = {"amis": 1000}  # AMIS: an SND_UD every second; the others push every 5 s
AMIS_RETRIES = 2  # unacknowledged SND_UD repeated this often, then the meter falls silent
AMIS_NKE_EVERY_S = 60  # a silent AMIS meter offers the link again (SND_NKE) this often


def layouts():
    """The decoder's layouts (``LAYOUTS``, the single list) that the virtual meter can send."""
    from smartmeter.protocol.layouts import LAYOUTS

    return tuple(name for name in LAYOUTS if name in PROFILES)


# Appliances: (name, watts, minutes, probability per telegram-minute in its hours, hours)
_APPLIANCES = (
    ("kettle", 2000, 3, 0.02, (6, 9)),
    ("oven", 2400, 45, 0.01, (17, 19)),
    ("washer", 900, 90, 0.002, (8, 20)),
    ("dishwasher", 1200, 60, 0.004, (19, 22)),
)


class Household:
    """Power model: ``power(epoch)`` -> (consumption W per phase tuple, pv W)."""

    def __init__(self, seed=1, pv_peak_w=4500):
        self.rng = random.Random(seed)
        self.pv_peak_w = pv_peak_w
        self._running = {}  # name -> end epoch

    def power(self, epoch):
        rng = self.rng
        offset = vienna_offset_at(epoch)
        fields = fields_from_epoch(epoch + offset * 60)
        hour = fields[3] + fields[4] / 60
        base = 150 + (90 if (epoch // 60) % 60 < 20 else 0)  # fridge cycles 20 of 60 minutes
        if 6 <= hour < 8.5 or 18 <= hour < 22.5:
            base += 250
        for name, watts, minutes, prob, (h0, h1) in _APPLIANCES:
            end = self._running.get(name)
            if end is not None and epoch >= end:
                del self._running[name]
            elif end is None and h0 <= hour < h1 and rng.random() < prob / 12:
                self._running[name] = epoch + minutes * 60
        load = [base * 0.5, base * 0.3, base * 0.2]
        for k, name in enumerate(self._running):
            load[k % 3] += dict((a[0], a[1]) for a in _APPLIANCES)[name]
        # PV: a sine hump from sunrise to sunset, longer and higher in summer, with clouds
        day_of_year = (epoch // 86400) % 365
        season = 0.5 - 0.5 * math.cos(2 * math.pi * (day_of_year - 10) / 365)  # 0 Jan .. 1 Jul
        rise, sset = 7.5 - 2 * season, 16.5 + 4 * season
        pv = 0.0
        if rise < hour < sset:
            pv = (
                self.pv_peak_w
                * (0.35 + 0.65 * season)
                * math.sin(math.pi * (hour - rise) / (sset - rise))
            )
            pv *= 0.75 + 0.25 * rng.random()
        return load, pv


class VirtualMeter:
    """Pushes one telegram per call, encrypted and framed like the real meter of ``layout``.

    :param layout: "netznoe" | "tinetz" | "burgenland" | "kng"
    :param key: 16-byte meter key; :param auth_key: 16-byte auth key (Burgenland uses a tag)
    """

    def __init__(self, layout="netznoe", key=None, auth_key=None, seed=1, meter_number=None):
        if layout not in PROFILES:
            raise ValueError("unknown layout %r" % layout)
        self.layout = layout
        self.transport, self.system_title, self.security = PROFILES[layout]
        self.line = LINE[self.transport]
        self.interval_ms = INTERVAL_MS.get(self.transport, 5000)
        # AMIS link layer (the meter is the M-Bus master and wants an E5 for each frame)
        self.ident = 0x12345678
        self.acc = 0
        self.link = "nke"  # nke (offering the link) | data
        self.awaiting = None  # what the last frame wants acknowledged: "nke" | "data" | None
        self.tries = 0
        self.last_nke = None
        self.last_frame = b""
        self.nke_sent = 0
        self.repeats = 0
        self.acks_seen = 0
        self.silences = 0  # times it fell silent for want of an E5
        self.key = key
        self.auth_key = auth_key
        self.gcm = Gcm(key, auth_key) if key else None
        self.household = Household(seed)
        self.frame_counter = 0x1000
        self.meter_number = meter_number or "181220002177"
        self.a_plus_wh = 10_860_961
        self.a_minus_wh = 1_234_567
        self.r_plus = 420_000
        self.r_minus = 1_100_000
        self._acc_plus = 0  # W*s not yet a whole Wh
        self._acc_minus = 0
        self._last_epoch = None
        self.sent = 0

    def values(self, epoch):
        """The values the meter measures at UTC ``epoch`` (base units)."""
        load, pv = self.household.power(epoch)
        net_phase = [load[k] - pv / 3 for k in range(3)]
        net = sum(net_phase)
        p_plus = int(max(net, 0))
        p_minus = int(max(-net, 0))
        if self._last_epoch is not None:
            dt = max(0, epoch - self._last_epoch)
            self._acc_plus += p_plus * dt
            self._acc_minus += p_minus * dt
            self.a_plus_wh += self._acc_plus // 3600
            self.a_minus_wh += self._acc_minus // 3600
            self._acc_plus %= 3600
            self._acc_minus %= 3600
        self._last_epoch = epoch
        rng = self.household.rng
        v = {
            r.A_PLUS: self.a_plus_wh,
            r.A_MINUS: self.a_minus_wh,
            r.R_PLUS: self.r_plus,
            r.R_MINUS: self.r_minus,
            r.P_PLUS: p_plus,
            r.P_MINUS: p_minus,
            r.POWER_FACTOR: 0.95,
            r.METER_NUMBER: self.meter_number,
        }
        for k in range(3):
            u = round(229.0 + 4 * rng.random(), 1)
            v[r.VOLTAGES[k]] = u
            v[r.CURRENTS[k]] = round(abs(net_phase[k]) / u / 0.95, 2)
        return v

    def extended(self, values):
        """Add what the newer layouts send: reactive power, tariff registers, AMIS Inkasso."""
        v = dict(values)
        p_plus = v[r.P_PLUS]
        v[r.Q_PLUS] = p_plus // 3
        v[r.Q_MINUS] = v[r.P_MINUS] // 10
        for base in ("1-0:1.8", "1-0:2.8", "1-0:3.8", "1-0:4.8"):
            total = v[base + ".0"]
            v[base + ".2"] = total // 3
            v[base + ".1"] = total - total // 3
        v["1-0:1.128.0"] = 0
        return v

    def telegram(self, epoch):
        """Wire bytes of the telegram the meter sends at UTC ``epoch`` (whole seconds)."""
        offset = vienna_offset_at(epoch)
        fields = fields_from_epoch(epoch + offset * 60)
        values = self.values(epoch)
        dst = offset == 120
        if self.transport == "amis":
            self.acc = (self.acc + 1) & 0xFF
            self.sent += 1
            return telegrams.amis_frame(
                self.extended(values), fields, dst, self.key, self.ident, self.acc, self.acc & 1
            )
        self.frame_counter += 1
        if self.layout == "wienernetze":
            dt = telegrams.datetime_bytes(fields, offset, dst)
            body = telegrams.body_wienernetze(self.extended(values), dt)
            apdu = telegrams.data_notification(self.frame_counter + 1, dt, body)
        elif self.layout == "e450-list":
            dt = telegrams.datetime_bytes(fields, None, dst)
            body = telegrams.body_e450_list(self.extended(values), dt)
            apdu = telegrams.data_notification(self.frame_counter, dt, body)
        elif self.layout == "t210dr":
            apdu = telegrams.dsmr_text(self.extended(values), fields, dst)
        else:
            apdu = telegrams.plaintext(self.layout, values, fields, offset, dst, self.frame_counter)
        payload = telegrams.envelope(
            apdu,
            self.key,
            self.system_title,
            self.frame_counter,
            self.security,
            self.auth_key,
            self.gcm,
        )
        if self.security & 0x10 and self.auth_key is None:
            payload += bytes(12)  # a tag nobody can check without the auth key
        self.sent += 1
        if self.transport == "mbus":
            return frames.mbus_frames(payload)
        if self.transport == "gbt":
            return frames.hdlc_gbt_frames(payload)
        if self.transport == "hdlc-wn":
            return frames.hdlc_frames(payload, segmented=False, dst=b"\xcf", src=b"\x02\x23")
        if self.transport == "raw":
            return payload
        return frames.hdlc_frames(payload)

    def send(self, epoch, received=b""):
        """What the meter puts on the line at this tick, given what it ``received`` since.

        Push meters send a telegram each tick. The AMIS meter is an M-Bus master: it offers
        the link with SND_NKE, sends an SND_UD per tick while each one is acknowledged with
        ``E5``, repeats an unacknowledged frame ``AMIS_RETRIES`` times and then falls silent,
        offering the link again every ``AMIS_NKE_EVERY_S`` seconds.
        """
        if self.transport != "amis":
            return self.telegram(epoch)
        acked = received.count(b"\xe5")
        self.acks_seen += acked
        if self.awaiting is not None and acked:
            if self.awaiting == "nke":
                self.link = "data"
            self.awaiting = None
            self.tries = 0
        if self.link == "nke":
            if self.last_nke is None or epoch - self.last_nke >= AMIS_NKE_EVERY_S:
                self.last_nke = epoch
                self.nke_sent += 1
                self.awaiting = "nke"
                return telegrams.SND_NKE
            return b""
        if self.awaiting == "data":
            self.tries += 1
            if self.tries > AMIS_RETRIES:
                self.link = "nke"
                self.awaiting = None
                self.silences += 1
                self.last_nke = epoch  # silent until the next link offer
                return b""
            self.repeats += 1
            return self.last_frame
        self.last_frame = self.telegram(epoch)
        self.awaiting = "data"
        return self.last_frame
