# SPDX-License-Identifier: MIT
"""The TFT's menu screen (one of ``screens.SCREENS``): loaded while it is shown."""

from .screens import BLACK, GREY, VOLT, label
from .texts import MENU

_MENU_Y = (29, 53, 77)


class Screen:
    """Restart, system info, setup mode; the cursor follows ``view.menu_index``."""

    def build(self, g, t):
        self.items = [label(g, t["m_" + item], 20, y, 2) for item, y in zip(MENU, _MENU_Y)]
        self.cursor = label(g, ">", 4, _MENU_Y[0], 2, VOLT)
        label(g, t["m_hint"], 2, 101, color=GREY)

    def update(self, view, state, now):
        index = view.menu_index
        for n, item in enumerate(self.items):
            view.set_color(item, VOLT if n == index else BLACK)
        y = _MENU_Y[index]
        if self.cursor.anchored_position[1] != y:
            self.cursor.anchored_position = (4, y)
            view.changes += 1
