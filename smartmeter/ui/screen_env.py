# SPDX-License-Identifier: MIT
"""The TFT's env screen (one of ``screens.SCREENS``): loaded while it is shown."""

from .screens import LABEL, label
from .texts import fixed


class Screen:
    """Board temperature, humidity and WiFi signal."""

    def build(self, g, t):
        self.rows = []
        for n, (key, unit) in enumerate((("temp", "C"), ("hum", "%"), ("wifi", "dBm"))):
            y = 30 + 27 * n
            label(g, t[key], 2, y + 10, color=LABEL)
            self.rows.append(label(g, "--", 136, y, 2, right=True))
            label(g, unit, 138, y + 10)

    def update(self, view, state, now):
        rssi = state.wifi_rssi if state.wifi_connected else None
        view.set_text(self.rows[0], fixed(state.temperature, 1, 5))
        view.set_text(self.rows[1], fixed(state.humidity, 1, 5))
        view.set_text(self.rows[2], fixed(rssi, 0, 5))
