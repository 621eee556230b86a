# SPDX-License-Identifier: MIT
"""The TFT's phases screen (one of ``screens.SCREENS``): loaded while it is shown."""

import displayio

from ..protocol.reading import CURRENTS, VOLTAGES
from .screens import AMP, GREY, VOLT, label, values_of
from .texts import current, fixed


class Screen:
    """L1..L3 rows with voltage and current; a meter that sends neither (Wiener Netze, AMIS,
    T210-D-r) gets a sentence saying so instead of six dashes."""

    def build(self, g, t):
        self.rows = displayio.Group()
        g.append(self.rows)
        self.u = []
        self.i = []
        for n in range(3):
            y = 30 + 27 * n
            label(self.rows, "L%d" % (n + 1), 2, y + 10, color=GREY)
            self.u.append(label(self.rows, "--", 80, y, 2, VOLT, right=True))
            label(self.rows, "V", 82, y + 10, color=VOLT)
            self.i.append(label(self.rows, "--", 146, y, 2, AMP, right=True))
            label(self.rows, "A", 148, y + 10, color=AMP)
        self.note = displayio.Group()
        self.note.hidden = True
        g.append(self.note)
        for n, line in enumerate(t["no_ui"].split("\n")):
            label(self.note, line, 80, 44 + 14 * n, color=GREY, center=True)

    def update(self, view, state, now):
        values = values_of(state)[0]
        none = state.latest is not None
        for key in VOLTAGES + CURRENTS:
            if key in values:
                none = False
        view.set_hidden(self.rows, none)
        view.set_hidden(self.note, not none)
        if none:
            return
        for n in range(3):
            view.set_text(self.u[n], fixed(values.get(VOLTAGES[n]), 1, 5))
            view.set_text(self.i[n], current(values.get(CURRENTS[n])))
