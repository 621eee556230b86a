# SPDX-License-Identifier: MIT
"""The problem texts in English (``state.problem_text``), at most 26 characters for the display.

One module per language: a board loads the ones it shows (the display and the web page in
UI_LANGUAGE, the serial line in English), when it first shows a problem. Keys are the problem
codes of ``state.py`` (tests/host/test_names.py checks both languages have all of them).
"""

TEXTS = {
    "no_key": "No meter key set",
    "config": "Bad setting",
    "no_signal": "No signal from meter",
    "no_frames": "Bytes but no frames",
    "line_search": "Searching line settings",
    "amis_tx": "AMIS needs the TX line",
    "wrong_key": "Wrong key?",
    "auth_key": "Auth key missing",
    "tag_mismatch": "Auth tag mismatch",
    "layout": "Unknown meter format",
    "clock": "Clock not set",
    "meter_clock": "Meter clock wrong",
    "sd_missing": "SD card missing",
    "sd_full": "SD full",
    "sd_error": "SD error",
    "no_wifi": "No WiFi",
    "login_refused": "Web logins refused",
    "sensor": "Sensor error",
    "memory": "Out of memory",
    "web_off": "Web page not running",
}
