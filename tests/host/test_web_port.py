"""The web server cannot listen (its port is taken): a named problem on every status surface,
and the web part retries with a backoff until the port is free again."""

import json
import socket

from test_ui import texts_on_screen

from sim.display import make_png_display
from sim.hardware import Console, Hardware, ManualClock, SimRadio, SimUart
from smartmeter import app as app_mod
from smartmeter import config
from smartmeter.state import problem_hint
from smartmeter.timeutil import epoch_from_fields, ticks_diff
from smartmeter.web import api

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def _build(port, language):
    clock = ManualClock(start_epoch=epoch_from_fields((2024, 5, 1, 10, 0, 0)))
    display, _snapshot = make_png_display()
    console = Console(out=None, interactive=False)
    values = {"METER_KEY": KEY, "SD_MODE": "none", "WEB_PORT": port, "UI_LANGUAGE": language}
    hw = Hardware(
        uart=SimUart(),
        display=display,
        pool=socket,
        radio=SimRadio(),
        clock=clock,
        console=console,
    )
    firmware = app_mod.build(hw, config.load(lambda _n: None, values), listen="127.0.0.1")
    return firmware, clock


def _can_connect(port):
    with socket.socket() as c:
        c.settimeout(2)
        return c.connect_ex(("127.0.0.1", port)) == 0


def test_port_in_use_is_a_named_problem_and_the_web_part_retries():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    firmware, clock = _build(port, "en")
    try:
        st = firmware.state
        assert firmware.web is not None  # kept, retrying
        firmware.loop_once()
        problems = st.problems(clock.ticks_ms(), ticks_diff)
        assert "web_off" in problems, problems
        status = json.loads(api.status_json(st, "en"))
        texts = [p["text"] for p in status["problems"]]
        assert "Web page not running" in texts, texts
        assert "Web page not running" in firmware.status_line()
        firmware.ui.poll(clock.ticks_ms())
        shown = texts_on_screen(firmware.ui)
        assert "Alles OK" not in shown and "All OK" not in shown, shown
        assert "Web page not running" in shown, shown
        # the hint (shown under the first problem) names the cause
        assert problem_hint("web_off", "en") == "WEB_PORT %d in use" % port
        # the port is taken: retries fail, spaced by the backoff
        tried = firmware.web.listen_tries
        for _ in range(5):
            firmware.loop_once()
        assert firmware.web.listen_tries == tried  # not every pass
        clock.advance(3000)
        firmware.loop_once()
        assert firmware.web.listen_tries == tried + 1
        assert "web_off" in st.problems(clock.ticks_ms(), ticks_diff)
        # the port comes free: the next retry listens and the problem goes
        blocker.close()
        clock.advance(70_000)
        firmware.loop_once()
        assert "web_off" not in st.problems(clock.ticks_ms(), ticks_diff)
        assert _can_connect(port)
    finally:
        blocker.close()
        if firmware.web is not None:
            firmware.web.stop()


def test_port_in_use_in_german():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    firmware, clock = _build(port, "de")
    try:
        firmware.loop_once()
        firmware.ui.poll(clock.ticks_ms())
        shown = texts_on_screen(firmware.ui)
        assert "Webseite laeuft nicht" in shown, shown
        assert problem_hint("web_off", "de") == "WEB_PORT %d belegt" % port
    finally:
        blocker.close()
        if firmware.web is not None:
            firmware.web.stop()
