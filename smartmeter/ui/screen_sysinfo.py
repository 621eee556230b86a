# SPDX-License-Identifier: MIT
"""The TFT's sysinfo screen (one of ``screens.SCREENS``): loaded while it is shown."""

from .screens import BLACK, WHITE, label
from .texts import gigabytes, uptime

_SYS_LINES = 7


class Screen:
    """Name, network or access point, uptime, SD, telegram counts (white on black)."""

    background = BLACK

    def build(self, g, t):
        self.lines = [label(g, "", 2, 29 + 12 * i, color=WHITE) for i in range(_SYS_LINES)]

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
        view.fill(self.lines, [(line, WHITE) for line in lines])
