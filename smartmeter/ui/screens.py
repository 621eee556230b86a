# SPDX-License-Identifier: MIT
"""The display tree of the TFT (160x128 landscape) and the in-place updates of each screen.

Every screen is one small class with ``build(group, texts)`` (make its labels when it is
shown) and ``update(view, state, now)`` (assign what changed), collected in :data:`SCREENS`.
Its ``cycle`` flag says whether NEXT visits it; :data:`CYCLE` is derived from that tuple, and
the simulator (``sim/screens.py``) and the tests import both. A new screen is one class here,
its texts in ``texts.py`` and one entry in ``SCREENS``.

Only the visible screen is in the tree (with the header, time band and banner): switching
screens drops the old screen's labels and builds the new one's, so the heap holds one screen's
labels, not all of them. While a screen is shown a new telegram only assigns ``label.text``
where the string differs, so displayio refreshes just the dirty rectangles. Every assignment is
counted in ``View.changes`` (the bench reads it). Labels are made by :func:`_text` alone:
:class:`.tiletext.TileText`, one TileGrid over the font's glyphs (``_LEAN_LABELS = const(0)``
switches to adafruit_display_text's ``bitmap_label``, 3-4 times the heap per label; README
"Memory").

Layout (y in px): header bar 0-13 (dark grey, title and page), timestamp band 14-27 (dark blue,
meter time), content 29-113, problem banner 114-127 (red, only when something is wrong).
Font: terminalio (6x12 px cells); values at scale 2 (12x24).
"""

import displayio
import vectorio

from ..datalog.peaks import demand as outlook_demand
from ..protocol.reading import (
    A_MINUS,
    A_PLUS,
    CURRENTS,
    DERIVED_PF,
    P_MINUS,
    P_PLUS,
    POWER_FACTOR,
    Q_MINUS,
    Q_PLUS,
    R_MINUS,
    R_PLUS,
    VOLTAGES,
)
from ..state import problem_hint, problem_text
from ..timeutil import civil_from_days, eu_offset
from .texts import (
    ABSENT,
    MENU,
    clip,
    current,
    euro,
    fixed,
    gigabytes,
    kwh,
    meter_time,
    texts,
    uptime,
)
from .texts import age as _age
from .tiletext import TileText

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# 0: adafruit_display_text bitmap_label instead, 3-4x the heap per label (README); a const, so
# the compiler leaves the branch not taken out of the board's bytecode
_LEAN_LABELS = const(1)
_WIDTH = const(160)
_HEIGHT = const(128)
_COLS = const(26)  # characters per line at scale 1
_BANNER_Y = const(114)
_STATUS_LINES = const(6)
_SYS_LINES = const(7)
_MSG_LINES = const(10)

# Colours (RGB888). Header and band as the original (RGB565 0x39C7 and 0x1A6F).
_WHITE = const(0xFFFFFF)
_BLACK = const(0x000000)
_HEADER = const(0x393939)
_BAND = const(0x184D7B)
_VOLT = const(0x0030A0)
_AMP = const(0xB00000)
_LABEL = const(0x005A18)
_ENERGY = const(0x8A3A00)
_RED = const(0xC00000)
_GREEN = const(0x007A00)
_GREY = const(0x505050)

_MENU_Y = (29, 53, 77)


def _rect(group, color, x, y, w, h):
    pal = displayio.Palette(1)
    pal[0] = color
    group.append(vectorio.Rectangle(pixel_shader=pal, width=w, height=h, x=x, y=y))
    return pal


def _text(group, text, x, y, scale=1, color=_BLACK, right=False, center=False):
    """A label whose top-left (or top-right / top-centre) corner is at (x, y)."""
    ax = 1.0 if right else 0.5 if center else 0.0
    if _LEAN_LABELS:
        lbl = TileText(text, color, scale, ax, (x, y))
    else:
        import terminalio
        from adafruit_display_text.bitmap_label import Label

        lbl = Label(
            terminalio.FONT,
            text=text,
            color=color,
            scale=scale,
            anchor_point=(ax, 0.0),
            anchored_position=(x, y),
        )
    group.append(lbl)
    return lbl


_GAP = const(1)  # usage.GAP, NOPRICE and NOFEED (the usage module stays unimported here)
_NOPRICE = const(2)
_NOFEED = const(16)


def _month_of(day):
    y, m, _d = civil_from_days(day)
    return y * 12 + m - 1


def _values(state):
    latest = state.latest
    if latest is None:
        return {}, {}
    return latest.values, latest.derived


# -- the screens ------------------------------------------------------------------------------
class Status:
    """Everything fine (telegrams, last one, IP) or the problems with a hint for the first."""

    name = "status"
    cycle = True

    def build(self, g, t):
        self.head = _text(g, "", 2, 29, 2)
        self.lines = [_text(g, "", 2, 54 + 12 * i) for i in range(_STATUS_LINES)]

    def update(self, view, state, now):
        t = view.t
        problems = view.problems
        language = view.language
        lines = []
        if not problems:
            view.set_text(self.head, t["all_ok"])
            view.set_color(self.head, _GREEN)
            lines.append((t["telegrams"] + str(state.counters.decoded), _BLACK))
            diff = view.ticks_diff
            if state.latest_ticks is None or now is None or diff is None:
                last = t["never"] if state.latest is None else "--"
            else:
                last = _age(max(0, diff(now, state.latest_ticks)))
            lines.append((t["last"] + last, _BLACK))
            if state.ip:
                lines.append((t["ip"] + state.ip, _BLACK))
        else:
            n = len(problems)
            head = "%d %s" % (n, t["problems"])
            if n > 1:
                head += "e" if language == "de" else "s"
            view.set_text(self.head, head)
            view.set_color(self.head, _RED)
            lines.append((problem_text(problems[0], language), _RED))
            hint = problem_hint(problems[0], language)
            if hint:
                lines.append(("  " + hint, _GREY))
            room = _STATUS_LINES - len(lines)
            rest = problems[1:]
            if len(rest) > room:
                rest = rest[: room - 1]
                more = n - 1 - len(rest)
            else:
                more = 0
            for code in rest:
                lines.append((problem_text(code, language), _RED))
            if more:
                lines.append(("+%d%s" % (more, t["more"]), _RED))
        view.fill(self.lines, lines)


class Phases:
    """L1..L3 rows with voltage and current; a meter that sends neither (Wiener Netze, AMIS,
    T210-D-r) gets a sentence saying so instead of six dashes."""

    name = "phases"
    cycle = True

    def build(self, g, t):
        self.rows = displayio.Group()
        g.append(self.rows)
        self.u = []
        self.i = []
        for n in range(3):
            y = 30 + 27 * n
            _text(self.rows, "L%d" % (n + 1), 2, y + 10, color=_GREY)
            self.u.append(_text(self.rows, "--", 80, y, 2, _VOLT, right=True))
            _text(self.rows, "V", 82, y + 10, color=_VOLT)
            self.i.append(_text(self.rows, "--", 146, y, 2, _AMP, right=True))
            _text(self.rows, "A", 148, y + 10, color=_AMP)
        self.note = displayio.Group()
        self.note.hidden = True
        g.append(self.note)
        for n, line in enumerate(t["no_ui"].split("\n")):
            _text(self.note, line, 80, 44 + 14 * n, color=_GREY, center=True)

    def update(self, view, state, now):
        values = _values(state)[0]
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


class Power:
    """Import and export power (scale 2), power factors (scale 1) - or, for a meter that sends
    reactive power but no power factor (Wiener Netze, AMIS, T210-D-r), reactive power."""

    name = "power"
    cycle = True

    def build(self, g, t):
        self.t = t
        _text(g, t["import"], 2, 40, color=_LABEL)
        self.p_in = _text(g, "--", 146, 30, 2, right=True)
        _text(g, "W", 148, 40)
        _text(g, t["export"], 2, 66, color=_LABEL)
        self.p_out = _text(g, "--", 146, 56, 2, right=True)
        _text(g, "W", 148, 66)
        self.l1 = _text(g, t["pf_meter"], 2, 86, color=_LABEL)
        self.pf_m = _text(g, "--", 158, 86, right=True)
        self.l2 = _text(g, t["pf_calc"], 2, 100, color=_LABEL)
        self.pf_c = _text(g, "--", 158, 100, right=True)

    def update(self, view, state, now):
        values, derived = _values(state)
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


def _reactive(values, total, tariff1, tariff2):
    """Reactive energy register: the total, or T1 of a meter with only one tariff (AMIS)."""
    v = values.get(total)
    if v is None and tariff2 not in values:
        v = values.get(tariff1)
    return v


class Energy:
    """The meter's import and export registers; reactive energy in one line where sent."""

    name = "energy"
    cycle = True

    def build(self, g, t):
        _text(g, t["e_import"], 2, 29, color=_ENERGY)
        self.e_in = _text(g, "--", 136, 41, 2, right=True)
        _text(g, "kWh", 138, 51)
        _text(g, t["e_export"], 2, 66, color=_ENERGY)
        self.e_out = _text(g, "--", 136, 78, 2, right=True)
        _text(g, "kWh", 138, 88)
        self.react = _text(g, "", 2, 102, color=_GREY)

    def update(self, view, state, now):
        values = _values(state)[0]
        view.set_text(self.e_in, kwh(values.get(A_PLUS)))
        view.set_text(self.e_out, kwh(values.get(A_MINUS)))
        r_in = _reactive(values, R_PLUS, "1-0:3.8.1", "1-0:3.8.2")
        r_out = _reactive(values, R_MINUS, "1-0:4.8.1", "1-0:4.8.2")
        text = ""
        if r_in is not None or r_out is not None:
            text = "R+ %s  R- %s kvarh" % (_kvarh(r_in), _kvarh(r_out))
        view.set_text(self.react, text)


def _kvarh(varh):
    return ABSENT if varh is None else "%d" % ((int(varh) + 500) // 1000)


def _usage_now(state):
    """``(usage, epoch, tariff)`` for the usage screens: the summary, the latest telegram's time
    (the summary's own after a boot, before the first telegram) and its tariff."""
    usage = state.usage
    epoch = state.latest_epoch
    if epoch is None and usage is not None:
        epoch = usage.last_epoch
    return usage, epoch, usage.tariff if usage is not None else None


class Usage:
    """Energy and cost today, yesterday and this month (from ``state.usage``), the price now.

    Cost is import cost (energy + grid fee) minus feed-in credit; the month includes the base
    fee. A row whose
    period has a gap (or a meter change) is marked with "*".
    """

    name = "usage"
    cycle = True

    def build(self, g, t):
        _text(g, "kWh", 2, 30, color=_GREY)
        _text(g, t["u_in"], 94, 30, color=_GREY, right=True)
        _text(g, t["u_out"], 126, 30, color=_GREY, right=True)
        _text(g, "EUR", 158, 30, color=_GREY, right=True)
        self.rows = []
        for n in range(3):
            y = 44 + 14 * n
            self.rows.append(
                (
                    _text(g, t["u_rows"][n], 2, y, color=_ENERGY),
                    _text(g, "--", 94, y, right=True),
                    _text(g, "--", 126, y, right=True),
                    _text(g, "--", 158, y, right=True),
                )
            )
        self.price = _text(g, "", 2, 88, color=_LABEL)
        self.note = _text(g, "", 2, 100, color=_GREY)

    def update(self, view, state, now):
        t = view.t
        usage, epoch, tariff = _usage_now(state)
        gaps = False
        for n in range(3):
            label, imp, exp, cost = self.rows[n]
            row = None
            grid = None
            if usage is not None and epoch is not None:
                day = usage.day_key(epoch)
                ring, key = (usage.days, day - n) if n < 2 else (usage.months, _month_of(day))
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
        view.set_text(self.price, clip(line, _COLS))
        fee = tariff is not None and tariff.base_fee_mct
        view.set_text(self.note, t["u_gap"] if gaps else (t["u_fee"] if fee else ""))


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


class Tariff:
    """The cheapest 1, 2 and 3 hours to come (energy price + grid fee), the month's quarter-hour
    demand peaks and the open quarter heading for them (``datalog/outlook.py``, ``peaks.py``).

    The projection line turns red when the quarter is heading above the month's peak.
    """

    name = "tariff"
    cycle = True

    def build(self, g, t):
        _text(g, t["t_cheap"], 2, 30, color=_GREY)
        _text(g, "ct/kWh", 158, 30, color=_GREY, right=True)
        self.rows = []
        for n in range(3):
            y = 42 + 12 * n
            self.rows.append(
                (
                    _text(g, "%d h" % (n + 1), 2, y, color=_ENERGY),
                    _text(g, "--", 30, y),
                    _text(g, "", 158, y, right=True),
                )
            )
        _text(g, t["t_peak"], 2, 78, color=_LABEL)
        # "12.34kW" (no space) ends 6 px before the date: one space from it and from the label
        self.peak = _text(g, "--", 86, 78, right=True)
        self.peak_at = _text(g, "", 158, 78, right=True)
        self.more = _text(g, "", 2, 90, color=_GREY)
        self.now = _text(g, "", 2, 102)

    def update(self, view, state, now):
        t = view.t
        usage, epoch, tariff = _usage_now(state)
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
            and peaks.month == _month_of(usage.day_key(epoch))
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
                clip("%s%s -> %s kW" % (t["t_quarter"], _kw(running), _kw(projected)), _COLS),
            )
            high = top is not None and top.at[0] >= 0 and projected > top.w[0]
            view.set_color(self.now, _RED if high else _BLACK)


class Env:
    """Board temperature, humidity and WiFi signal."""

    name = "env"
    cycle = True

    def build(self, g, t):
        self.rows = []
        for n, (key, unit) in enumerate((("temp", "C"), ("hum", "%"), ("wifi", "dBm"))):
            y = 30 + 27 * n
            _text(g, t[key], 2, y + 10, color=_LABEL)
            self.rows.append(_text(g, "--", 136, y, 2, right=True))
            _text(g, unit, 138, y + 10)

    def update(self, view, state, now):
        rssi = state.wifi_rssi if state.wifi_connected else None
        view.set_text(self.rows[0], fixed(state.temperature, 1, 5))
        view.set_text(self.rows[1], fixed(state.humidity, 1, 5))
        view.set_text(self.rows[2], fixed(rssi, 0, 5))


class Menu:
    """Restart, system info, setup mode; the cursor follows ``view.menu_index``."""

    name = "menu"
    cycle = True

    def build(self, g, t):
        self.items = [_text(g, t["m_" + item], 20, y, 2) for item, y in zip(MENU, _MENU_Y)]
        self.cursor = _text(g, ">", 4, _MENU_Y[0], 2, _VOLT)
        _text(g, t["m_hint"], 2, 101, color=_GREY)

    def update(self, view, state, now):
        index = view.menu_index
        for n, item in enumerate(self.items):
            view.set_color(item, _VOLT if n == index else _BLACK)
        y = _MENU_Y[index]
        if self.cursor.anchored_position[1] != y:
            self.cursor.anchored_position = (4, y)
            view.changes += 1


class SysInfo:
    """Name, network or access point, uptime, SD, telegram counts (white on black)."""

    name = "sysinfo"
    cycle = False
    background = _BLACK

    def build(self, g, t):
        self.lines = [_text(g, "", 2, 29 + 12 * i, color=_WHITE) for i in range(_SYS_LINES)]

    def update(self, view, state, now):
        t = view.t
        lines = [t["name"] + (state.hostname or "--")]
        if state.ap_mode:
            lines.append(t["ap"] + (state.ap_ssid or "--"))
            lines.append(t["ap_pw"] + (state.ap_password or "--"))
        else:
            lines.append(t["ip"] + (state.ip or "--"))
            wifi = state.wifi_ssid or "--"
            if state.wifi_connected and state.wifi_rssi is not None:
                wifi += " %d dBm" % state.wifi_rssi
            lines.append(t["wifi"] + ": " + wifi)
        lines.append(t["uptime"] + uptime(state.uptime_s))
        sd = t["sd_states"].get(state.sd_state)
        if sd is None:
            if state.sd_free is None or state.sd_total is None:
                sd = "--"
            else:
                sd = gigabytes(state.sd_free) + t["sd_free"] + gigabytes(state.sd_total)
        lines.append(t["sd"] + sd)
        c = state.counters
        errors = c.wrong_key + c.tag_mismatch + c.parse_errors + c.checksum_errors
        lines.append(t["tel_short"] + str(c.decoded) + t["err_short"] + str(errors))
        if state.web_password_generated:
            lines.append(t["web_pw"] + state.web_password_generated)
        elif state.version:
            lines.append(t["version"] + state.version)
        view.fill(self.lines, [(line, _WHITE) for line in lines])


class Confirm:
    """The restart question (static)."""

    name = "confirm"
    cycle = False

    def build(self, g, t):
        _text(g, t["c_question"], 80, 36, 2, _RED, center=True)
        _text(g, t["c_yes"], 2, 72)
        _text(g, t["c_no"], 2, 88)

    def update(self, view, state, now):
        pass


# Every screen, in NEXT order for those with ``cycle``. The single source of the screen names.
SCREENS = (Status, Phases, Power, Energy, Usage, Tariff, Env, Menu, SysInfo, Confirm)
CYCLE = tuple(cls.name for cls in SCREENS if cls.cycle)


class View:
    """The TFT as one displayio tree (``root``) plus the code that fills it.

    Only the visible screen exists: ``select`` drops the labels of the screen shown before and
    builds the new one (the header, time band and problem banner stay). All screens at once
    would hold about 100 labels - more heap than a board without PSRAM has for the display.
    ``screens`` and ``groups`` map the visible screen's name (a name of :data:`SCREENS` or
    "message") to its instance and group (tests read their labels). While a screen updates,
    ``problems``, ``ticks_diff`` and ``menu_index`` hold this pass's context.
    """

    def __init__(self, language="de"):
        self.language = language
        self.t = texts(language)
        self.changes = 0
        self.problems = []
        self.ticks_diff = None
        self.menu_index = 0
        self.root = root = displayio.Group()
        self._bg = _rect(root, _WHITE, 0, 0, _WIDTH, _HEIGHT)
        self.groups = {}
        self.screens = {}
        # Header bar and timestamp band
        g = self._chrome = displayio.Group()
        root.append(g)
        _rect(g, _HEADER, 0, 0, _WIDTH, 14)
        _rect(g, _BAND, 0, 14, _WIDTH, 14)
        self._title = _text(g, "", 2, 1, color=_WHITE)
        self._page = _text(g, "", 158, 1, color=_WHITE, right=True)
        self._time = _text(g, "--", 80, 15, color=_WHITE, center=True)
        # Problem banner (above every screen; the screen's group goes in below it)
        g = self._banner = displayio.Group()
        g.hidden = True
        root.append(g)
        _rect(g, _RED, 0, _BANNER_Y, _WIDTH, _HEIGHT - _BANNER_Y)
        self._banner_text = _text(g, "", 2, _BANNER_Y + 1, color=_WHITE)
        self._msg_big = None
        self._msg = ()
        self.screen = None

    def _build(self, name):
        """Make the group of screen ``name`` (or "message") and put it in the tree."""
        g = displayio.Group()
        if name == "message":
            _rect(g, _BLACK, 0, 0, _WIDTH, _HEIGHT)
            self._msg_big = _text(g, "", 80, 52, 2, _WHITE, center=True)
            self._msg = [_text(g, "", 2, 4 + 12 * i, color=_WHITE) for i in range(_MSG_LINES)]
            self.root.append(g)  # above the banner
        else:
            for cls in SCREENS:
                if cls.name == name:
                    screen = cls()
                    screen.build(g, self.t)
                    self.screens[name] = screen
            self.root.insert(2, g)  # after background and header, below the banner
        self.groups[name] = g
        self.changes += 1

    def _drop(self, name):
        """Take screen ``name`` out of the tree and forget its labels (the heap gets them back)."""
        g = self.groups.pop(name, None)
        if g is not None:
            self.root.remove(g)
            self.changes += 1
        self.screens.pop(name, None)
        if name == "message":
            self._msg_big = None
            self._msg = ()

    # -- primitive changes (counted) -------------------------------------------------------

    def set_text(self, lbl, text):
        """Assign ``lbl.text`` only when it differs."""
        if lbl.text != text:
            lbl.text = text
            self.changes += 1

    def set_color(self, lbl, color):
        """Assign ``lbl.color`` only when it differs."""
        if lbl.color != color:
            lbl.color = color
            self.changes += 1

    def set_hidden(self, group, hidden):
        """Show or hide a group, only when that changes."""
        if group.hidden != hidden:
            group.hidden = hidden
            self.changes += 1

    def fill(self, labels, lines):
        """Put ``[(text, colour), ...]`` into ``labels`` (clipped), blanking the rest."""
        for n, lbl in enumerate(labels):
            if n < len(lines):
                text, color = lines[n]
                self.set_text(lbl, clip(text, _COLS))
                self.set_color(lbl, color)
            else:
                self.set_text(lbl, "")

    # -- screens ---------------------------------------------------------------------------

    def select(self, name):
        """Make screen ``name`` (a name of :data:`SCREENS` or "message") the visible one."""
        if name == self.screen:
            return
        if self.screen is not None:
            self._drop(self.screen)
        self._build(name)
        self.set_hidden(self._chrome, name == "message")
        if name == "message":
            self.set_hidden(self._banner, True)
        screen = self.screens.get(name)
        bg = getattr(screen, "background", _WHITE)
        if self._bg[0] != bg:
            self._bg[0] = bg
            self.changes += 1
        self.set_text(self._title, self.t.get(name, ""))
        page = "%d/%d" % (CYCLE.index(name) + 1, len(CYCLE)) if name in CYCLE else ""
        self.set_text(self._page, page)
        self.screen = name

    def update(self, state, now=None, ticks_diff=None, menu_index=0):
        """Bring the visible screen, the time band and the banner up to date with ``state``."""
        name = self.screen
        latest = state.latest
        self.set_text(self._time, meter_time(latest.meter_time if latest else None, self.language))
        problems = self.problems = state.problems(now, ticks_diff)
        self.ticks_diff = ticks_diff
        self.menu_index = menu_index
        screen = self.screens.get(name)
        if screen is not None:
            screen.update(self, state, now)
        show = bool(problems) and name not in ("status", "message")
        if show:
            text = problem_text(problems[0], self.language)
            more = " +%d" % (len(problems) - 1) if len(problems) > 1 else ""
            self.set_text(self._banner_text, clip(text, _COLS - len(more)) + more)
        self.set_hidden(self._banner, not show)

    def set_message(self, text):
        """Fill the full-screen message: one big line when short, else wrapped small lines."""
        text = text or ""
        big = "\n" not in text and len(text) <= 13
        self.set_text(self._msg_big, text if big else "")
        lines = [] if big else _wrap(text, _COLS)
        self.fill(self._msg, [(line, _WHITE) for line in lines[:_MSG_LINES]])


def _wrap(text, width):
    """Split ``text`` at newlines, then word-wrap each part to ``width`` characters."""
    out = []
    for part in text.split("\n"):
        line = ""
        for word in part.split(" "):
            while len(word) > width:  # a word longer than a line (URL, password)
                if line:
                    out.append(line)
                    line = ""
                out.append(word[:width])
                word = word[width:]
            if not line:
                line = word
            elif len(line) + 1 + len(word) <= width:
                line += " " + word
            else:
                out.append(line)
                line = word
        out.append(line)
    return out
