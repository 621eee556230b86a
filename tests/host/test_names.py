"""Every name list has one source; the places that must keep a copy stay in step with it."""

import importlib

from sim import meter as sim_meter
from sim import screens as sim_screens
from sim.__main__ import parse_args
from smartmeter import app as app_mod
from smartmeter import assemble, config, state
from smartmeter.datalog import csvformat
from smartmeter.outputs import graphite, hass
from smartmeter.protocol import dlms, layouts, reading, transport
from smartmeter.protocol.pipeline import Pipeline
from smartmeter.state import Counters
from smartmeter.ui import screens


def test_layout_names_come_from_the_layouts_table():
    kind, default, choices = config.SCHEMA["METER_LAYOUT"]
    assert (kind, default) == ("choice", "auto") and choices == ("auto",) + layouts.LAYOUTS
    # the simulator offers exactly the meters it can encode, each a layout the decoder knows
    assert set(sim_meter.PROFILES) <= set(layouts.LAYOUTS)
    for layout in sim_meter.PROFILES:
        assert parse_args(["--layout", layout]).layout == layout


def test_counter_names_come_from_the_reader_and_the_decoder():
    names = Counters.NAMES
    assert len(set(names)) == len(names)
    n = len(transport.READER_COUNTERS)
    assert names[:n] == transport.READER_COUNTERS
    assert names[n : n + len(dlms.COUNTERS)] == dlms.COUNTERS
    pipe = Pipeline(bytes(16), None, lambda r: None, lambda e: None)
    for name in transport.READER_COUNTERS:  # what app._sync_counters copies exists there
        assert isinstance(getattr(pipe.reader, name), int), name
    for name in dlms.COUNTERS:
        assert isinstance(getattr(pipe.decoder, name), int), name
    assert not set(graphite.STATUS) - set(names)  # Graphite's status paths are real counters


def test_extras_keys_come_from_reading_extras():
    app_extras = app_mod.App.__init__.__code__.co_names
    assert "EXTRAS" in app_extras
    assert [spec[0] for spec in csvformat._EXTRA_SPEC] == list(reading.EXTRAS)
    assert {m[1] for m in graphite.METRICS if m[0] == "x"} == set(reading.EXTRAS)
    for key in reading.EXTRAS:
        assert hass.entity(key) is not None, key


def test_secrets_are_the_key_and_secret_settings():
    assert config.SECRETS == tuple(
        n for n, row in config.SCHEMA.items() if row[0] in ("key", "secret")
    )
    for name in ("METER_KEY", "WEB_PASSWORD", "MQTT_PASSWORD", "INFLUX_TOKEN"):
        assert name in config.SECRETS


def test_every_output_has_its_module_switch_and_contract():
    for name, switch, label in config.OUTPUTS:
        mod = importlib.import_module("smartmeter.outputs." + name)
        assert mod.NAME == name and callable(mod.make)
        assert config.SCHEMA[switch][0] == "str", switch
        assert all(len(code) and states for code, states, _t in mod.PROBLEMS)
        for _code, _states, words in mod.PROBLEMS:
            assert set(words) == {"en", "de"}
            for text, hint in words.values():
                assert len(text) <= 26 and len(hint) <= 26, (text, hint)  # the display's width
        assert 0 < len(label) <= 12
    names = [p[0] for p in assemble.PARTS]
    assert len(set(names)) == len(names)
    outputs = [n for n, _s, _l in config.OUTPUTS]
    assert [n for n in names if n in outputs] == outputs  # build() starts each, in this order


def test_screen_cycle_comes_from_the_screen_list():
    assert screens.CYCLE == tuple(name for name, cycle in screens.SCREENS if cycle)
    assert sim_screens.ALL_SCREENS == tuple(name for name, _cycle in screens.SCREENS)


def test_every_problem_code_has_its_text_and_hint_in_both_languages(monkeypatch):
    """The language modules (one per language and kind, a board loads the ones it shows) hold
    exactly the problem codes of state.py, each text and hint at most 26 characters."""
    monkeypatch.setattr(state, "_ADDED", {})  # no output's or web port's texts from other tests
    codes = {v for k, v in vars(state).items() if k.isupper() and isinstance(v, str)}
    assert {"no_key", "web_off", "meter_clock"} <= codes
    for kind, name in (("problemtexts", "TEXTS"), ("problemhints", "HINTS")):
        for language in ("en", "de"):
            table = getattr(importlib.import_module("smartmeter.%s_%s" % (kind, language)), name)
            # the sensor has no hint (the status screen shows none for it)
            assert set(table) == (codes if kind == "problemtexts" else codes - {"sensor"}), language
            for code, text in table.items():
                assert 0 < len(text) <= 26, (code, language, text)
                lookup = state.problem_text if kind == "problemtexts" else state.problem_hint
                assert lookup(code, language) == text
    assert state.problem_text("no_such_code", "de") == "no_such_code"
    assert state.problem_text("no_key", "fr") == "No meter key set"  # other languages: English
    assert state.problem_hint("sensor", "de") is None
