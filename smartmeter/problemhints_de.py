# SPDX-License-Identifier: MIT
"""What to do about a problem, in German (``state.problem_hint``), at most 26 characters.

Only the display's status screen shows hints (in UI_LANGUAGE): a board loads this module when it
first shows one. Keys are the problem codes of ``state.py``.
"""

HINTS = {
    "no_key": "METER_KEY eintragen",
    "config": "settings.toml pruefen",
    "no_signal": "Kabel zum Zaehler pruefen",
    "no_frames": "Kabel/Anschluss pruefen",
    "line_search": "Probiert Baud/Paritaet",
    "amis_tx": "PIN_METER_TX anschliessen",
    "wrong_key": "Schluessel vom Netzbetr.",
    "auth_key": "Auth-Schluessel eintragen",
    "tag_mismatch": "Auth-Schluessel pruefen",
    "layout": "Zaehlertyp bitte melden",
    "clock": "Wartet auf Zaehler/NTP",
    "meter_clock": "Zeilen mit Board-Uhr/NTP",
    "sd_missing": "SD-Karte einstecken",
    "sd_full": "Alte Logdateien loeschen",
    "sd_error": "SD-Karte pruefen",
    "no_wifi": "Menue > Einrichtung",
    "login_refused": "Jemand raet Passwoerter",
    "memory": "Weniger Teile oder PSRAM",
    "web_off": "WEB_PORT pruefen",
}
