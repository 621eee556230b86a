# SPDX-License-Identifier: MIT
"""The TFT's confirm screen (one of ``screens.SCREENS``): loaded while it is shown."""

from .screens import RED, label


class Screen:
    """The restart question (static)."""

    def build(self, g, t):
        label(g, t["c_question"], 80, 36, 2, RED, center=True)
        label(g, t["c_yes"], 2, 72)
        label(g, t["c_no"], 2, 88)

    def update(self, view, state, now):
        pass
