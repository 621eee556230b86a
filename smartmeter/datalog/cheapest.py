# SPDX-License-Identifier: MIT
"""The cheapest 1, 2 and 3 hours in the next 24 hours (the dishwasher, the wallbox). Pure logic.

Over the quarter hours from the current one to 24 hours ahead (96 quarters, whatever the local
day's length: the search runs on UTC quarters), each quarter's price is the energy price
(day-ahead, per quarter or per hour) plus the grid fee of that quarter (``gridfee.GridFees``);
a window of ``n`` quarters counts only when every one of its quarters has a price. The cheapest
window is the one with the lowest sum (so the lowest average), the earliest of equal ones. Its
start may be the current quarter ("now").

Recomputed by :meth:`Cheapest.update` only when the prices change (``version``) or a new
quarter begins (so a window start that has passed is never shown): one O(96) sliding sum per
length, on one preallocated array - nothing allocated per telegram.
"""

from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


SPAN = const(96)  # quarters in the next 24 hours
HOURS = (1, 2, 3)
UNKNOWN = const(-0x3FFFFFFF)  # no price (a small int on the board)
NONE = const(-1)  # no window found


def search(prices, n, length):
    """``(index, sum)`` of the cheapest run of ``length`` items among ``prices[:n]`` that holds
    no ``UNKNOWN``; the earliest of equal sums; ``(NONE, 0)`` when there is none."""
    best = NONE
    best_sum = 0
    total = 0
    bad = 0
    for i in range(n):
        p = prices[i]
        if p == UNKNOWN:
            bad += 1
        else:
            total += p
        if i >= length:
            p = prices[i - length]
            if p == UNKNOWN:
                bad -= 1
            else:
                total -= p
        if i >= length - 1 and not bad and (best == NONE or total < best_sum):
            best = i - length + 1
            best_sum = total
    return best, best_sum


class Cheapest:
    """The start and average price of the cheapest 1, 2 and 3 hours ahead.

    ``start[k]``/``avg_mct[k]`` for ``HOURS[k]``: the window's first quarter (UTC epoch // 900:
    a small int on the board, where an epoch is a long) and its average price in milli-cent per
    kWh (energy + grid fee), or ``NONE``/0 without prices.
    """

    def __init__(self):
        self._buf = array("i", bytes(4 * SPAN))
        self.start = array("i", (NONE, NONE, NONE))
        self.avg_mct = array("i", bytes(12))
        self.computed_q = NONE  # the quarter (epoch // 900) it was computed in
        self._version = NONE
        self.runs = 0

    def due(self, now, version):
        return now // 900 != self.computed_q or version != self._version

    def update(self, now, price, fees=None, version=0):
        """Recompute when due. ``now``: UTC epoch; ``price(q)`` -> the energy price (mct/kWh)
        of quarter ``q`` (UTC epoch // 900) or None; ``fees`` a ``GridFees`` or None;
        ``version`` changes whenever the prices change. :returns: True when it recomputed"""
        q = now // 900
        if q == self.computed_q and version == self._version:
            return False
        self.computed_q = q
        self._version = version
        self.runs += 1
        buf = self._buf
        add = fees is not None and fees.active()
        for i in range(SPAN):
            p = price(q + i)
            if p is None:
                buf[i] = UNKNOWN
            else:
                buf[i] = p + fees.fee((q + i) * 900) if add else p
        for k in range(len(HOURS)):
            length = HOURS[k] * 4
            at, total = search(buf, SPAN, length)
            if at == NONE:
                self.start[k] = NONE
                self.avg_mct[k] = 0
            else:
                self.start[k] = q + at
                self.avg_mct[k] = (
                    (total + length // 2) // length
                    if total >= 0
                    else -((-total + length // 2) // length)
                )
        return True

    def clear(self):
        self.computed_q = self._version = NONE
        for k in range(len(HOURS)):
            self.start[k] = NONE
            self.avg_mct[k] = 0
