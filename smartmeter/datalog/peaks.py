# SPDX-License-Identifier: MIT
"""The month's highest quarter-hour demand, and where the current quarter is heading. Pure logic.

Demand of a quarter hour = its average power = its import energy (register difference, Wh) x 4,
in W: what capacity-based grid tariffs bill. :class:`Peaks` keeps the month's three highest
quarters with their start times (UTC epoch), month by local time (a quarter belongs to the
month of its local start; the first quarter of a new month starts a new list), a quarter as its
number ``q`` = UTC epoch // 900 (a small int on the board; an epoch is a long). A quarter booked
again (after a restart) replaces its earlier value, never counts twice. Equal demands: the
earlier quarter ranks first. Seven int32 (28 bytes) in the usage summary file.

:func:`projection` says where the open quarter is heading: its running average (energy so far /
time so far) and the demand it will have when the present power holds to its end - so a new
peak shows before the quarter closes.
"""

from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


TOP = const(3)
NONE = const(-1)
WORDS = const(1 + 2 * TOP)  # int32 in the summary file


class Peaks:
    """Top ``TOP`` quarter demands of the month: ``w[i]`` (W) and ``at[i]`` (quarter number)."""

    def __init__(self):
        self.month = NONE  # year * 12 + month - 1 (local)
        self.w = array("i", bytes(4 * TOP))
        self.at = array("i", (NONE,) * TOP)

    def clear(self, month=NONE):
        self.month = month
        for i in range(TOP):
            self.w[i] = 0
            self.at[i] = NONE

    def add(self, start, imp_wh, month):
        """Book quarter ``start`` (UTC epoch // 900) with ``imp_wh`` Wh, in local ``month``.

        :returns: True when it entered the top list
        """
        if month < self.month:
            return False  # an older month (a replay): its list is gone
        if month != self.month:
            self.clear(month)
        w = self.w
        at = self.at
        for i in range(TOP):  # booked before: take it out, it goes in again below
            if at[i] == start:
                for j in range(i, TOP - 1):
                    w[j] = w[j + 1]
                    at[j] = at[j + 1]
                w[TOP - 1] = 0
                at[TOP - 1] = NONE
                break
        demand = imp_wh * 4
        for i in range(TOP):
            if at[i] == NONE or demand > w[i] or (demand == w[i] and start < at[i]):
                for j in range(TOP - 1, i, -1):
                    w[j] = w[j - 1]
                    at[j] = at[j - 1]
                w[i] = demand
                at[i] = start
                return True
        return False

    def peak(self, month):
        """``(w, quarter)`` of the highest quarter of local ``month``, or None."""
        if month != self.month or self.at[0] == NONE:
            return None
        return self.w[0], self.at[0]

    def to_words(self):
        out = [self.month]
        for i in range(TOP):
            out.append(self.w[i])
            out.append(self.at[i])
        return out

    def from_words(self, words):
        """Load ``to_words``; :raises ValueError: when they make no sense (damaged)."""
        if len(words) != WORDS:
            raise ValueError("peaks")
        for i in range(TOP):
            if words[1 + 2 * i] < 0:
                raise ValueError("peaks")
        self.month = words[0]
        for i in range(TOP):
            self.w[i] = words[1 + 2 * i]
            self.at[i] = words[2 + 2 * i]


def projection(wh, elapsed_s, power_w):
    """``(running_w, projected_w)`` of the open quarter hour.

    :param wh: import energy of the quarter so far (Wh); ``elapsed_s``: seconds since it began
        (to the latest telegram); ``power_w``: the import power now (W), None when not sent
    :returns: the running average (W; None in the first 30 s, too noisy) and the demand the
        quarter will have when ``power_w`` holds to its end (energy so far + power x time left)
    """
    if elapsed_s < 0:
        elapsed_s = 0
    if elapsed_s > 900:
        elapsed_s = 900
    running = (wh * 3600 + elapsed_s // 2) // elapsed_s if elapsed_s >= 30 else None
    if power_w is None:
        power_w = running if running is not None else 0
    left = 900 - elapsed_s
    projected = (wh * 3600 + int(power_w) * left + 450) // 900
    return running, projected


def demand(usage, epoch, power_w):
    """``(running_w, projected_w)`` of the quarter of UTC ``epoch`` from the usage summary's
    open quarter (``usage.quarter(q)``: import Wh first), or None when it has no data yet."""
    if usage is None or epoch is None:
        return None
    q = epoch // 900
    row = usage.quarter(q)
    if row is None:
        return None
    return projection(row[0], epoch - q * 900, power_w)
