# SPDX-License-Identifier: MIT
"""The problem texts in German (``state.problem_text``), at most 26 characters for the display.

One module per language: a board loads the ones it shows (the display and the web page in
UI_LANGUAGE, the serial line in English), when it first shows a problem. Keys are the problem
codes of ``state.py`` (tests/host/test_names.py checks both languages have all of them).
"""

TEXTS = {
    "no_key": "Kein Schluessel",
    "config": "Fehlerhafte Einstellung",
    "no_signal": "Kein Signal vom Zaehler",
    "no_frames": "Daten ohne Rahmen",
    "line_search": "Suche Leitungsparameter",
    "amis_tx": "AMIS braucht TX-Leitung",
    "wrong_key": "Falscher Schluessel?",
    "auth_key": "Auth-Schluessel fehlt",
    "tag_mismatch": "Auth-Pruefung fehlgeschl.",
    "layout": "Unbekanntes Format",
    "clock": "Uhrzeit nicht gesetzt",
    "meter_clock": "Zaehleruhr falsch",
    "sd_missing": "Keine SD-Karte",
    "sd_full": "SD-Karte voll",
    "sd_error": "SD-Fehler",
    "no_wifi": "Kein WLAN",
    "login_refused": "Web-Logins abgewiesen",
    "sensor": "Sensorfehler",
    "memory": "RAM zu knapp",
    "web_off": "Webseite laeuft nicht",
}
