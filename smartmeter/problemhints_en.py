# SPDX-License-Identifier: MIT
"""What to do about a problem, in English (``state.problem_hint``), at most 26 characters.

Only the display's status screen shows hints (in UI_LANGUAGE): a board loads this module when it
first shows one. Keys are the problem codes of ``state.py``.
"""

HINTS = {
    "no_key": "Set METER_KEY",
    "config": "Check settings.toml",
    "no_signal": "Check the meter cable",
    "no_frames": "Check cable/connection",
    "line_search": "Trying baud/parity",
    "amis_tx": "Wire PIN_METER_TX",
    "wrong_key": "Check key from grid op.",
    "auth_key": "Set the auth key",
    "tag_mismatch": "Check the auth key",
    "layout": "Please report meter type",
    "clock": "Waiting for meter/NTP",
    "meter_clock": "Rows use board time (NTP)",
    "sd_missing": "Insert an SD card",
    "sd_full": "Delete old log files",
    "sd_error": "Check the SD card",
    "no_wifi": "Menu > Setup mode",
    "login_refused": "Someone guesses passwords",
    "memory": "Fewer parts or PSRAM",
    "web_off": "Check WEB_PORT",
}
