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

# layout -> (transport, system title, security byte, needs auth key)
PROFILES = {
    "netznoe": ("mbus", b"KFM\x67\x50\x00\x08\x81", 0x20),
    "tinetz": ("mbus", b"KFM\x10\x20\x02\x98\x02", 0x21),
    "burgenland": ("hdlc", b"LGZ\x67\x72\xa9\xa1\x11", 0x30),
    "kng": ("hdlc", b"ISK\x69\x74\xac\x00\x8f", 0x20),
}
BAUD = {"mbus": 2400, "hdlc": 9600}

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

    def telegram(self, epoch):
        """Wire bytes of the telegram the meter sends at UTC ``epoch`` (whole seconds)."""
        offset = vienna_offset_at(epoch)
        fields = fields_from_epoch(epoch + offset * 60)
        values = self.values(epoch)
        self.frame_counter += 1
        apdu = telegrams.plaintext(
            self.layout, values, fields, offset, offset == 120, self.frame_counter
        )
        payload = telegrams.envelope(
            apdu,
            self.key,
            self.system_title,
            self.frame_counter,
            self.security,
            self.auth_key,
            self.gcm,
        )
        self.sent += 1
        if self.transport == "mbus":
            return frames.mbus_frames(payload)
        return frames.hdlc_frames(payload)
