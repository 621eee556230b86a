# SPDX-License-Identifier: MIT
"""The TFT's power screen (one of ``screens.SCREENS``): loaded while it is shown."""

from ..protocol.reading import DERIVED_PF, P_MINUS, P_PLUS, POWER_FACTOR, Q_MINUS, Q_PLUS
from .screens import LABEL, label, values_of
from .texts import fixed


class Screen:
    """Import and export power (scale 2), power factors (scale 1) - or, for a meter that sends
    reactive power but no power factor (Wiener Netze, AMIS, T210-D-r), reactive power."""

    def build(self, g, t):
        self.t = t
        label(g, t["import"], 2, 40, color=LABEL)
        self.p_in = label(g, "--", 146, 30, 2, right=True)
        label(g, "W", 148, 40)
        label(g, t["export"], 2, 66, color=LABEL)
        self.p_out = label(g, "--", 146, 56, 2, right=True)
        label(g, "W", 148, 66)
        self.l1 = label(g, t["pf_meter"], 2, 86, color=LABEL)
        self.pf_m = label(g, "--", 158, 86, right=True)
        self.l2 = label(g, t["pf_calc"], 2, 100, color=LABEL)
        self.pf_c = label(g, "--", 158, 100, right=True)

    def update(self, view, state, now):
        values, derived = values_of(state)
        t = self.t
        view.set_text(self.p_in, fixed(values.get(P_PLUS), 0, 6))
        view.set_text(self.p_out, fixed(values.get(P_MINUS), 0, 6))
        if POWER_FACTOR not in values and (Q_PLUS in values or Q_MINUS in values):
            view.set_text(self.l1, t["q_in"])
            view.set_text(self.l2, t["q_out"])
            view.set_text(self.pf_m, _var(values.get(Q_PLUS)))
            view.set_text(self.pf_c, _var(values.get(Q_MINUS)))
            return
        view.set_text(self.l1, t["pf_meter"])
        view.set_text(self.l2, t["pf_calc"])
        view.set_text(self.pf_m, fixed(values.get(POWER_FACTOR), 3, 6))
        view.set_text(self.pf_c, fixed(derived.get(DERIVED_PF), 3, 6))


def _var(value):
    text = fixed(value, 0, 7)
    return text if value is None else text + " var"
