# SPDX-License-Identifier: MIT
"""The console's 'd' command: every counter and state of the app, one per line (no secrets).

Its own module, imported on the first 'd' (``App.status_dump``): code the board does not need
at boot stays out of the heap.
"""


def status_lines(app):
    """The 'd' console command: every counter and state, one per line (no secrets)."""
    st = app.state
    lines = [
        "smartmeter %s host %s" % (st.version, st.hostname),
        "uptime %d s, reset reason %s" % (st.uptime_s, st.reset_reason),
        "wifi %s ssid %s ip %s rssi %s" % (st.wifi_connected, st.wifi_ssid, st.ip, st.wifi_rssi),
        "sd %s free %s total %s" % (st.sd_state, st.sd_free, st.sd_total),
        "meter line %s (%s) tx %s link frames %d acks %d"
        % (st.line, st.line_state, "yes" if st.meter_tx else "no", st.link_frames, app.acks),
    ]
    for s in st.sinks.values():
        lines.append(
            "%s %s sent %d failed %d queued %d dropped %d"
            % (s.name, s.state, s.sent, s.failed, s.queued, s.dropped)
        )
    c = st.counters
    for name in c.NAMES:
        lines.append("  %s %s" % (name, getattr(c, name)))
    for name, text in st.last_errors.items():
        lines.append("  last %s error: %s" % (name, text))
    for s in st.sinks.values():
        if s.error:
            lines.append("  last %s error: %s" % (s.name, s.error))
    for text in st.config_problems:
        lines.append("  setting: %s" % text)
    return lines
