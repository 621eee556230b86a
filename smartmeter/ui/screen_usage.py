# SPDX-License-Identifier: MIT
"""The TFT's usage screen (one of ``screens.SCREENS``): loaded while it is shown."""

from .screens import COLS, ENERGY, GREY, LABEL, label, month_of, usage_now
from .texts import clip, euro, kwh

_GAP = 1  # usage.GAP, NOPRICE and NOFEED (the usage module stays unimported here)
_NOPRICE = 2
_NOFEED = 16


class Screen:
    """Energy and cost today, yesterday and this month (from ``state.usage``), the price now.

    Cost is import cost (energy + grid fee) minus feed-in credit; the month includes the base
    fee. A row whose period has a gap (or a meter change) is marked with "*".
    """

    def build(self, g, t):
        label(g, "kWh", 2, 30, color=GREY)
        label(g, t["u_in"], 94, 30, color=GREY, right=True)
        label(g, t["u_out"], 126, 30, color=GREY, right=True)
        label(g, "EUR", 158, 30, color=GREY, right=True)
        self.rows = []
        for n in range(3):
            y = 44 + 14 * n
            self.rows.append(
                (
                    label(g, t["u_rows"][n], 2, y, color=ENERGY),
                    label(g, "--", 94, y, right=True),
                    label(g, "--", 126, y, right=True),
                    label(g, "--", 158, y, right=True),
                )
            )
        self.price = label(g, "", 2, 88, color=LABEL)
        self.note = label(g, "", 2, 100, color=GREY)

    def update(self, view, state, now):
        t = view.t
        usage, epoch, tariff = usage_now(state)
        gaps = False
        for n in range(3):
            label, imp, exp, cost = self.rows[n]
            row = None
            grid = None
            if usage is not None and epoch is not None:
                day = usage.day_key(epoch)
                ring, key = (usage.days, day - n) if n < 2 else (usage.months, month_of(day))
                row = usage.period(ring, key)
                grid = usage.grid_part(ring, key)
            gap = row is not None and row[4] & _GAP
            gaps = gaps or gap
            view.set_text(label, t["u_rows"][n] + ("*" if gap else ""))
            view.set_text(imp, kwh(row[0], 6) if row else "--")
            view.set_text(exp, kwh(row[1], 5) if row else "--")
            net = None
            if row and tariff is not None and not row[4] & _NOPRICE:
                if tariff.price_mct or tariff.market_hours() or row[2]:
                    net = row[2] - (0 if row[4] & _NOFEED else row[3]) + (grid or 0)
                    if n == 2:
                        net += tariff.base_fee_mct
            view.set_text(cost, euro(net, 5))
        price = nxt = None
        if tariff is not None and epoch is not None:
            q = epoch // 900  # the quarter hour now, and the next one
            price, dynamic = tariff.import_q(q)
            nxt = tariff.import_q(q + 1)[0]
        if price is None:
            line = t["u_noprice"]
        elif not dynamic:
            line = t["u_fixed"] + euro(price * 100, 6) + " ct/kWh"  # mct/kWh as ct, 2 decimals
        elif nxt is None:
            line = t["u_price"] + euro(price * 100, 6) + " ct/kWh"
        else:
            line = t["u_price"] + euro(price * 100, 6) + t["u_next"] + euro(nxt * 100, 6) + " ct"
        view.set_text(self.price, clip(line, COLS))
        fee = tariff is not None and tariff.base_fee_mct
        view.set_text(self.note, t["u_gap"] if gaps else (t["u_fee"] if fee else ""))
