# SPDX-License-Identifier: MIT
"""The TFT's tariff screen (one of ``screens.SCREENS``): loaded while it is shown."""

from ..datalog.peaks import demand as outlook_demand
from ..protocol.reading import P_PLUS
from ..timeutil import civil_from_days, eu_offset
from .screens import BLACK, COLS, ENERGY, GREY, LABEL, RED, label, month_of, usage_now
from .texts import ABSENT, clip, euro


class Screen:
    """The cheapest 1, 2 and 3 hours to come (energy price + grid fee), the month's quarter-hour
    demand peaks and the open quarter heading for them (``datalog/outlook.py``, ``peaks.py``).

    The projection line turns red when the quarter is heading above the month's peak.
    """

    def build(self, g, t):
        label(g, t["t_cheap"], 2, 30, color=GREY)
        label(g, "ct/kWh", 158, 30, color=GREY, right=True)
        self.rows = []
        for n in range(3):
            y = 42 + 12 * n
            self.rows.append(
                (
                    label(g, "%d h" % (n + 1), 2, y, color=ENERGY),
                    label(g, "--", 30, y),
                    label(g, "", 158, y, right=True),
                )
            )
        label(g, t["t_peak"], 2, 78, color=LABEL)
        # "12.34kW" (no space) ends 6 px before the date: one space from it and from the label
        self.peak = label(g, "--", 86, 78, right=True)
        self.peak_at = label(g, "", 158, 78, right=True)
        self.more = label(g, "", 2, 90, color=GREY)
        self.now = label(g, "", 2, 102)

    def update(self, view, state, now):
        t = view.t
        usage, epoch, tariff = usage_now(state)
        outlook = getattr(tariff, "outlook", None) if tariff is not None else None
        starts = None
        if outlook is not None and epoch is not None:
            outlook.refresh(epoch)
            starts = outlook.cheapest
        today = _local(epoch // 900)[0] if epoch is not None else None
        for n in range(3):
            _label, when, avg = self.rows[n]
            q = starts.start[n] if starts is not None else -1
            if q < 0:
                view.set_text(when, ABSENT if n else t["t_noprice"])
                view.set_text(avg, "")
                continue
            day, hhmm = _local(q)
            if q == epoch // 900:
                text = t["t_now"]
            else:
                text = t["t_days"][1 if day > today else 0] + hhmm
            view.set_text(when, text)
            view.set_text(avg, euro(starts.avg_mct[n] * 100, 6))  # mct/kWh as ct, 2 decimals
        peaks = usage.peaks if usage is not None else None
        top = None
        if (
            peaks is not None
            and epoch is not None
            and peaks.month == month_of(usage.day_key(epoch))
        ):
            top = peaks
        if top is None or top.at[0] < 0:
            view.set_text(self.peak, ABSENT)
            view.set_text(self.peak_at, "")
            view.set_text(self.more, "")
        else:
            view.set_text(self.peak, _kw(top.w[0]) + "kW")
            day, hhmm = _local(top.at[0])
            _y, m, d = civil_from_days(day)
            date = "%02d.%02d " % (d, m) if t["t_dayfirst"] else "%02d-%02d " % (m, d)
            view.set_text(self.peak_at, date + hhmm)
            more = [_kw(top.w[i]) for i in (1, 2) if top.at[i] >= 0]
            view.set_text(self.more, (t["t_more"] + " / ".join(more) + " kW") if more else "")
        running = projected = None
        if usage is not None and epoch is not None:
            values = state.latest.values if state.latest is not None else {}
            got = outlook_demand(usage, epoch, values.get(P_PLUS))
            if got is not None:
                running, projected = got
        if projected is None:
            view.set_text(self.now, "")
        else:
            view.set_text(
                self.now,
                clip("%s%s -> %s kW" % (t["t_quarter"], _kw(running), _kw(projected)), COLS),
            )
            high = top is not None and top.at[0] >= 0 and projected > top.w[0]
            view.set_color(self.now, RED if high else BLACK)


def _kw(w):
    """W as kW with 2 decimals ("7.84"), "--" if None."""
    if w is None:
        return ABSENT
    w = int(w)
    sign = "-" if w < 0 else ""
    tens = (abs(w) + 5) // 10
    return "%s%d.%02d" % (sign, tens // 100, tens % 100)


def _local(q):
    """(local day number, "HH:MM") of quarter ``q`` (UTC epoch // 900), Austrian time."""
    epoch = q * 900
    local = epoch + eu_offset(epoch, 60) * 60
    return local // 86400, "%02d:%02d" % (local // 3600 % 24, local // 60 % 60)
