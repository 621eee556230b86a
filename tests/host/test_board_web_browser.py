"""The web pages of the board in a box in headless Chromium: the release zip in the
CircuitPython VM serves them through the ``socketpool`` stand-in (CircuitPython's socket API and
errors) with Adafruit's httpserver as .mpy, exactly as a board would.

One boot: the browser logs in (401, then Basic), sees the live values move, downloads a day file
and a month from the Files page (compared byte for byte with what was put on the card), uploads a
file through the page, opens the usage page, saves a setting on the settings page and reboots;
after the restart (``microcontroller.reset`` ends the VM, the box starts it again) the setting is
in force. The same steps pass against the simulator in test_web_browser.py and test_web.py.
Skipped without ``CIRCUITPYTHON`` (see test_board_system.py) or without Chromium.
"""

from __future__ import annotations

import json
import time

from test_board_system import VM, build_release, http_get, load_runner, pytestmark  # noqa: F401
from test_web_browser import (  # noqa: F401
    START_EPOCH,
    Cdp,
    browser,
    chromium,
    live_values_move,
    open_tab,
)

DAY = b"Zeit;UTC-Offset;A+ Wh;P+ W\r\n" + b"01.05.2024 00:00:00;+02:00;1;2\r\n" * 3000


def test_board_pages_in_a_browser(tmp_path, browser):  # noqa: F811 - the fixture from test_web_browser
    from servers import free_port

    run = load_runner()
    port = free_port()
    b = run.Board(
        VM,
        data_dir=tmp_path / "data",
        release=build_release(tmp_path / "dist"),
        speed=5,
        out=None,
        http_port=port,
        start=START_EPOCH,
        settings={"NTP_SERVER": "", "UI_LANGUAGE": "en", "PRICE_CT_KWH": "24.95"},
        sd_files={"logs/2024-05-01.csv": DAY},
    )
    password = b.values["WEB_PASSWORD"]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    upload = tmp_path / "note.txt"
    upload.write_bytes(b"uploaded through the board's files page\n" * 50)
    cdp = None
    try:
        b.start()
        b.wait_for("code.py output:", timeout=30)
        cdp = Cdp(browser, ("admin", password))
        s = open_tab(cdp)
        cdp.call(
            "Browser.setDownloadBehavior",
            behavior="allow",
            downloadPath=str(downloads),
            eventsEnabled=True,
        )
        base = "http://127.0.0.1:%d" % port
        # login and live values
        cdp.call("Page.navigate", s, url=base + "/")
        live_values_move(cdp, s, 40)
        assert cdp.challenges >= 1  # the browser was asked for the password
        # the Files page: a day file and the month, byte for byte
        cdp.call("Page.navigate", s, url=base + "/files")
        cdp.wait(s, "!!document.querySelector('a[href=\"/logs/2024-05-01.csv\"]')")
        cdp.eval(s, "document.querySelector('a[href=\"/logs/2024-05-01.csv\"]').click()")
        got = downloads / "2024-05-01.csv"
        end = time.monotonic() + 30
        while time.monotonic() < end and not (got.exists() and got.stat().st_size == len(DAY)):
            cdp.eval(s, "1")  # keeps the paused requests moving
            time.sleep(0.1)
        assert got.read_bytes() == DAY
        month = cdp.eval(s, "fetch('/month/2024-05.csv').then(function(r){return r.text()})")
        assert month.encode() == DAY  # one day in the month: the same file
        # upload through the page's file chooser
        doc = cdp.call("DOM.getDocument", s)["root"]["nodeId"]
        node = cdp.call("DOM.querySelector", s, nodeId=doc, selector="#upfile")["nodeId"]
        cdp.call("DOM.setFileInputFiles", s, files=[str(upload)], nodeId=node)
        cdp.eval(s, "document.getElementById('upbtn').click()")
        cdp.wait(s, "document.getElementById('upmsg').textContent == 'uploaded'", 30)
        back = cdp.eval(s, "fetch('/logs/note.txt').then(function(r){return r.text()})")
        assert back.encode() == upload.read_bytes()
        # the usage page
        cdp.call("Page.navigate", s, url=base + "/usage")
        cdp.wait(
            s,
            "document.querySelectorAll('#c_hour .hit').length == 24 && "
            "document.querySelectorAll('#c_day .hit').length == 31 && "
            "document.querySelectorAll('#c_month .hit').length == 12 && "
            "document.getElementById('s_today').textContent != '-'",
            40,
        )
        # a setting saved on the settings page, applied after the reboot
        cdp.call("Page.navigate", s, url=base + "/settings")
        cdp.wait(s, "!!document.querySelector('input[name=GRAPHITE_PREFIX]')")
        cdp.eval(s, "document.querySelector('input[name=GRAPHITE_PREFIX]').value = 'boxtest'")
        cdp.eval(s, "document.querySelector('#settings button[type=submit]').click()")
        cdp.wait(s, "document.getElementById('savemsg').textContent.indexOf('Saved') == 0", 30)
        boots = len(b.boots)
        cdp.eval(s, "window.confirm = function(){return true}")
        cdp.eval(s, "document.getElementById('reboot').click()")
        cdp.wait(s, "document.getElementById('actmsg').textContent == 'Rebooting...'", 30)
        b.run_until(lambda: len(b.boots) > boots, timeout=30)
        assert b.boots[-1] == "SOFTWARE"
        end = time.monotonic() + 40
        status = None
        while time.monotonic() < end and status != 200:
            try:
                status, body = http_get(port, password, "/api/settings")
            except OSError:
                time.sleep(0.5)
        assert status == 200
        assert json.loads(body)["values"]["GRAPHITE_PREFIX"] == "boxtest"
        status, body = http_get(port, password, "/api/status")
        assert json.loads(body)["reset_reason"] == "SOFTWARE"
        c = b.status()
    finally:
        if cdp is not None:
            cdp.ws.close()
        b.stop()
    assert c["http_errors"] == 0 and c["memory_errors"] == 0
    assert c["csv_rows"] == c["decoded"]
    names = {p.name for p in b.export_sd().rglob("*")}
    assert "note.txt" in names and "2024-05-01.csv" in names
