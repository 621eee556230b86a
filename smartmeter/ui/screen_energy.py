# SPDX-License-Identifier: MIT
"""The TFT's energy screen (one of ``screens.SCREENS``): loaded while it is shown."""

from ..protocol.reading import A_MINUS, A_PLUS, R_MINUS, R_PLUS
from .screens import ENERGY, GREY, label, values_of
from .texts import ABSENT, kwh


class Screen:
    """The meter's import and export registers; reactive energy in one line where sent."""

    def build(self, g, t):
        label(g, t["e_import"], 2, 29, color=ENERGY)
        self.e_in = label(g, "--", 136, 41, 2, right=True)
        label(g, "kWh", 138, 51)
        label(g, t["e_export"], 2, 66, color=ENERGY)
        self.e_out = label(g, "--", 136, 78, 2, right=True)
        label(g, "kWh", 138, 88)
        self.react = label(g, "", 2, 102, color=GREY)

    def update(self, view, state, now):
        values = values_of(state)[0]
        view.set_text(self.e_in, kwh(values.get(A_PLUS)))
        view.set_text(self.e_out, kwh(values.get(A_MINUS)))
        r_in = _reactive(values, R_PLUS, "1-0:3.8.1", "1-0:3.8.2")
        r_out = _reactive(values, R_MINUS, "1-0:4.8.1", "1-0:4.8.2")
        text = ""
        if r_in is not None or r_out is not None:
            text = "R+ %s  R- %s kvarh" % (_kvarh(r_in), _kvarh(r_out))
        view.set_text(self.react, text)


def _reactive(values, total, tariff1, tariff2):
    """Reactive energy register: the total, or T1 of a meter with only one tariff (AMIS)."""
    v = values.get(total)
    if v is None and tariff2 not in values:
        v = values.get(tariff1)
    return v


def _kvarh(varh):
    return ABSENT if varh is None else "%d" % ((int(varh) + 500) // 1000)
