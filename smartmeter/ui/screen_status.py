# SPDX-License-Identifier: MIT
"""The TFT's status screen (one of ``screens.SCREENS``): loaded while it is shown."""

from ..state import problem_hint, problem_text
from .screens import BLACK, GREEN, GREY, RED, label
from .texts import age as _age

_STATUS_LINES = 6


class Screen:
    """Everything fine (telegrams, last one, IP) or the problems with a hint for the first."""

    def build(self, g, t):
        self.head = label(g, "", 2, 29, 2)
        self.lines = [label(g, "", 2, 54 + 12 * i) for i in range(_STATUS_LINES)]

    def update(self, view, state, now):
        t = view.t
        problems = view.problems
        language = view.language
        lines = []
        if not problems:
            view.set_text(self.head, t["all_ok"])
            view.set_color(self.head, GREEN)
            lines.append((t["telegrams"] + str(state.counters.decoded), BLACK))
            diff = view.ticks_diff
            if state.latest_ticks is None or now is None or diff is None:
                last = t["never"] if state.latest is None else "--"
            else:
                last = _age(max(0, diff(now, state.latest_ticks)))
            lines.append((t["last"] + last, BLACK))
            if state.ip:
                lines.append((t["ip"] + state.ip, BLACK))
        else:
            n = len(problems)
            head = "%d %s" % (n, t["problems"])
            if n > 1:
                head += "e" if language == "de" else "s"
            view.set_text(self.head, head)
            view.set_color(self.head, RED)
            lines.append((problem_text(problems[0], language), RED))
            hint = problem_hint(problems[0], language)
            if hint:
                lines.append(("  " + hint, GREY))
            room = _STATUS_LINES - len(lines)
            rest = problems[1:]
            if len(rest) > room:
                rest = rest[: room - 1]
                more = n - 1 - len(rest)
            else:
                more = 0
            for code in rest:
                lines.append((problem_text(code, language), RED))
            if more:
                lines.append(("+%d%s" % (more, t["more"]), RED))
        view.fill(self.lines, lines)
