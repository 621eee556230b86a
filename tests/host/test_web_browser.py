"""The home page in a real browser: headless Chromium driven over the DevTools protocol.

The simulator (virtual meter + the real app loop, sim/run.py) runs in a thread; Chromium loads
the home page, the test waits until the live values change, downloads a day file through the
Files page and compares it byte for byte, opens the usage page (24 h / 31 days / 12 months of
bars from 40 prefilled days, a bar tapped for its values, no external resources), and saves
screenshots to docs/web.png and docs/usage.png (shown in the README). Skips when Chromium or
the ``websocket-client`` package is missing, fails under CI.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
from _support import REPO_ROOT, require, which

PASSWORD = "browser-test-pw"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
    "--window-size=1100,1300",
]


class Cdp:
    """Minimal DevTools client: one browser websocket, flattened page session."""

    def __init__(self, url, credentials=None):
        import websocket

        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.credentials = credentials  # answers the browser's Basic-auth challenges
        self.challenges = 0

    def _event(self, msg):
        """Keep requests paused by the Fetch domain moving; answer auth challenges."""
        method = msg.get("method")
        params = msg.get("params", {})
        session = msg.get("sessionId")
        if method == "Fetch.requestPaused":
            self._send("Fetch.continueRequest", session, requestId=params["requestId"])
        elif method == "Fetch.authRequired":
            self.challenges += 1
            user, password = self.credentials
            self._send(
                "Fetch.continueWithAuth",
                session,
                requestId=params["requestId"],
                authChallengeResponse={
                    "response": "ProvideCredentials",
                    "username": user,
                    "password": password,
                },
            )
        self.events.append(msg)

    def _send(self, method, session=None, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        return self.next_id

    def call(self, method, session=None, **params):
        want = self._send(method, session, **params)
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == want:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            if "method" in reply:
                self._event(reply)

    def eval(self, session, expr):
        r = self.call(
            "Runtime.evaluate", session, expression=expr, returnByValue=True, awaitPromise=True
        )
        return r.get("result", {}).get("value")

    def wait(self, session, expr, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.eval(session, expr)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError("timed out waiting for: " + expr)


# 2026-06-25 10:00 UTC: the simulated board's clock in these tests (never the day they run on).
START_EPOCH = 1782381600


def _free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _prefill_day(history, start_epoch):
    """A plausible day before the simulation starts (base load, evening peak, PV export at noon),
    so the screenshot shows a curve; the live minutes follow from the virtual meter."""
    import math

    for k in range(1440, 0, -1):
        t = start_epoch - 60 * k
        hour = (t % 86400) / 3600.0
        watts = (
            350
            + 900 * math.exp(-((hour - 19) ** 2) / 2)
            - 2200 * max(0.0, math.sin((hour - 7) / 12 * math.pi))
        )
        watts += 120 * math.sin(k / 7.0)
        history.add(t, int(watts))


def _prefill_usage(usage, meter, end_epoch):
    """40 days of 5-minute telegrams before the simulation (evening peak, PV export at noon),
    ending at the virtual meter's own register values so the live telegrams continue them."""
    import math

    steps = []
    for t in range(end_epoch - 40 * 86400, end_epoch, 300):
        hour = ((t + 3600) % 86400) / 3600.0
        day = t // 86400
        imp = 20 + 55 * math.exp(-((hour - 19) ** 2) / 3) + 6 * (day % 5)
        sun = max(0.0, math.sin((hour - 7) / 12 * math.pi)) * (0.4 + 0.6 * ((day * 7) % 10) / 10)
        steps.append((t, int(imp + 15 * math.exp(-((hour - 7) ** 2))), int(160 * sun)))
    a = meter.a_plus_wh - sum(s[1] for s in steps)
    e = meter.a_minus_wh - sum(s[2] for s in steps)
    for t, di, de in steps:
        a += di
        e += de
        usage.add(t, a, e)


def _market_prices(tariff, now):
    """Day-ahead prices per quarter for yesterday and today (a summer day: dear mornings and
    evenings, below zero around noon, a ramp within each hour), as the price fetch sets them."""
    import math

    local = now + 7200  # CEST
    first = (local - local % 86400 - 86400 - 7200) // 900
    got = []
    for q in range(first, first + 192):
        hour = ((q * 900 + 7200) % 86400) / 3600.0
        eur = (
            95
            + 70 * math.exp(-((hour - 20) ** 2) / 4)
            + 45 * math.exp(-((hour - 8) ** 2) / 3)
            - 140 * max(0.0, math.sin((hour - 7) / 12 * math.pi))
            + 6 * (q % 4 - 1.5)
        )
        got.append((q, int(eur * 1000)))
    tariff.set_market(got)


@pytest.fixture
def chromium():
    path = which("chromium", "chromium-browser", "google-chrome")
    require(path is not None, "chromium is not installed (apt-get install chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        require(False, "the websocket-client package is not installed")
    return path


@pytest.fixture
def browser(tmp_path, chromium):
    """Headless Chromium with its own profile: the DevTools websocket address; ended after the
    test (the profile removed)."""
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [chromium, *FLAGS, "--user-data-dir=%s" % profile, "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not active.exists() and time.monotonic() < end:
            time.sleep(0.1)
        assert active.exists(), "chromium did not start"
        time.sleep(0.2)
        port, path = active.read_text().split()[:2]
        yield "ws://127.0.0.1:%s%s" % (port, path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def open_tab(cdp):
    """A new tab's session, its requests paused so ``cdp`` answers the Basic-auth challenge
    like a user typing the password into the browser's prompt (401 first, then Basic)."""
    target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
    s = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    cdp.call("Fetch.enable", s, handleAuthRequests=True, patterns=[{"urlPattern": "*"}])
    return s


def _shot_of(cdp, s, element_js):
    """PNG bytes of the element ``element_js`` (a JavaScript expression) on the page."""
    box = json.loads(
        cdp.eval(
            s,
            "JSON.stringify((function(r){return {x:r.left+scrollX,y:r.top+scrollY,"
            "w:r.width,h:r.height}})(%s.getBoundingClientRect()))" % element_js,
        )
    )
    shot = cdp.call(
        "Page.captureScreenshot",
        s,
        format="png",
        captureBeyondViewport=True,
        clip={"x": box["x"], "y": box["y"], "width": box["w"], "height": box["h"], "scale": 1},
    )
    return base64.b64decode(shot["data"])


def live_values_move(cdp, s, timeout=20):
    """Wait until the home page shows a live power value, then until the meter time moves on."""
    cdp.wait(s, "/^-?\\d+$/.test(document.getElementById('p_in').textContent)", timeout)
    first = cdp.wait(
        s,
        "document.getElementById('m_time').textContent.length > 5 && "
        "document.getElementById('m_time').textContent",
    )
    changed = cdp.wait(
        s,
        "document.getElementById('m_time').textContent != %s && "
        "document.getElementById('m_time').textContent" % json.dumps(first),
    )
    assert changed != first


def _stop(cdp):
    if cdp is not None:
        try:
            cdp.ws.close()
        except Exception:  # noqa: BLE001, S110 - the browser may be gone already
            pass


def test_home_page_live_values_download_and_screenshot(tmp_path, browser):
    from sim.hardware import SimClock
    from sim.run import Simulation

    port = _free_port()
    values = {
        "METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB",
        "METER_AUTH_KEY": "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF",
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "WEB_PORT": port,
        "WEB_PASSWORD": PASSWORD,
        "CIRCUITPY_WIFI_SSID": "home-wifi",
        "HOSTNAME": "smartmeter",
        "UI_LANGUAGE": "en",
        "PRICE_CT_KWH": "24.95",
        "FEED_IN_CT_KWH": "7",
        "PRICE_DYNAMIC": True,  # the prices are set below; a fetch could only fail (port 9)
        "PRICE_API_URL": "http://127.0.0.1:9/v1/marketdata",
        "FEED_IN_DYNAMIC": True,
        "FEED_IN_FEE_CT_KWH": "1.2",
        "PRICE_MARKUP_CT_KWH": "1.44",
        "BASE_FEE_EUR_MONTH": "4.50",
        "GRID_FEE_CT_KWH": "8.5",
        "GRID_FEE_WINDOWS": "4-9 Mo-So 10-16 -20%",  # the summer low rate
    }
    logs = tmp_path / "data" / "sd" / "logs"
    logs.mkdir(parents=True)
    day = logs / "2024-05-01.csv"
    day.write_bytes(
        b"Zeit;UTC-Offset;A+ Wh;P+ W\r\n" + b"01.05.2024 00:00:00;+02:00;1;2\r\n" * 5000
    )
    # A fixed simulated date, not today's: the 40 prefilled days span two calendar months (the
    # 12-month chart's gap count below depends on it), whatever day the suite runs.
    start = START_EPOCH
    sim = Simulation(
        values,
        data_dir=str(tmp_path / "data"),
        clock=SimClock(speed=5, start_epoch=start),
        display="none",
        quiet=True,
    )
    _prefill_day(sim.app.state.history, start)
    while sim.app.usage.replaying:  # the (empty) rebuild of a new card ends first
        sim.app.usage.poll()
    _market_prices(sim.app.tariff, start)
    _prefill_usage(sim.app.state.usage, sim.meter, start)
    if sim.app.web.ticks != sim.clock.ticks_ms:  # until app.build passes ticks_ms=clock.ticks_ms
        sim.app.web.ticks = sim.clock.ticks_ms
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            sim.step()
            time.sleep(0.002)

    runner = threading.Thread(target=loop, daemon=True)
    runner.start()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    cdp = None
    try:
        cdp = Cdp(browser, ("admin", PASSWORD))
        s = open_tab(cdp)
        cdp.call(
            "Browser.setDownloadBehavior",
            behavior="allow",
            downloadPath=str(downloads),
            eventsEnabled=True,
        )
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            s,
            width=1000,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        base = "http://127.0.0.1:%d" % port
        cdp.call("Page.navigate", s, url=base + "/")
        live_values_move(cdp, s)
        cdp.wait(s, "!!document.querySelector('#chart svg path')")
        cdp.wait(s, "document.getElementById('sd').textContent.indexOf('total') >= 0")
        text = cdp.eval(s, "document.body.innerText")
        assert "No signal" not in text and "Rebooting" not in text
        assert "Bad setting" not in text and "No day-ahead prices" not in text, text[:300]
        # download a day file from the Files page
        cdp.call("Page.navigate", s, url=base + "/files")
        cdp.wait(s, "!!document.querySelector('a[href=\"/logs/2024-05-01.csv\"]')")
        months = cdp.eval(
            s,
            "Array.from(document.querySelectorAll('tr.month td:first-child'))"
            ".map(function(td){return td.textContent})",
        )
        assert "2024-05" in months and months == sorted(months, reverse=True)  # newest first
        cdp.eval(s, "document.querySelector('a[href=\"/logs/2024-05-01.csv\"]').click()")
        got = downloads / day.name
        end = time.monotonic() + 20
        while time.monotonic() < end and not (
            got.exists() and got.stat().st_size == day.stat().st_size
        ):
            cdp.eval(s, "1")  # keeps the paused requests moving
            time.sleep(0.1)
        assert got.read_bytes() == day.read_bytes()
        # the usage page: bars for 24 h / 31 days / 12 months, values on tap, CSV download
        cdp.call("Page.navigate", s, url=base + "/usage")
        cdp.wait(
            s,
            "document.querySelectorAll('#c_hour .hit').length == 24 && "
            "document.querySelectorAll('#c_day .hit').length == 31 && "
            "document.querySelectorAll('#c_month .hit').length == 12 && "
            "document.querySelectorAll('#c_quarter .hit').length == 192 && "
            "document.getElementById('s_today').textContent != '-'",
        )
        # the quarter view: yesterday and today, the price of each quarter over the bars
        quarters = json.loads(
            cdp.eval(s, "fetch('/api/usage?resolution=quarter').then(function(r){return r.text()})")
        )["rows"]
        assert len(quarters) == 192 and quarters[96]["label"] == "00:00"
        lines = cdp.eval(
            s,
            "Array.prototype.map.call(document.querySelectorAll('#c_quarter path'),"
            "function(p){return p.getAttribute('stroke')}).join(',')",
        )
        assert lines == "#c0392b,#2e8b57"  # import price, feed-in price (market)
        # the cards: feed-in now and next at the market (FEED_IN_DYNAMIC), not the fixed 7 ct
        tariff = json.loads(
            cdp.eval(s, "fetch('/api/usage?resolution=hour').then(function(r){return r.text()})")
        )["tariff"]
        cdp.wait(s, "document.getElementById('m_price').textContent.indexOf('feed-in now') >= 0")
        now_note = cdp.eval(s, "document.getElementById('m_price').textContent")
        next_note = cdp.eval(s, "document.getElementById('m_pnext').textContent")
        assert "feed-in now %.2f ct (market)" % tariff["feed_in_now_ct_kwh"] in now_note
        assert "7.00" not in now_note
        assert next_note == "feed-in next %.2f ct (market)" % tariff["feed_in_next_ct_kwh"]
        cdp.eval(
            s,
            "document.querySelectorAll('#c_quarter .hit')[96 + 37]"
            ".dispatchEvent(new MouseEvent('click',{bubbles:true}))",
        )
        tip = cdp.eval(s, "document.getElementById('t_quarter').textContent")
        q = quarters[96 + 37]  # today 09:15
        assert tip.startswith(q["date"][:5] + " 09:15-09:30")
        assert "price %.2f ct" % q["price_ct_kwh"] in tip
        assert "feed-in %.2f ct" % q["feed_in_ct_kwh"] in tip
        # the page shows energy + grid - credit, and the two parts apart
        net_ct = q["cost_ct"] + q["grid_ct"] - (q["credit_ct"] or 0)
        assert "cost %.2f EUR" % (net_ct / 100) in tip
        assert "grid %.2f" % (q["grid_ct"] / 100) in tip
        assert "grid fee %.2f ct" % q["grid_fee_ct_kwh"] in tip
        quarter_png = _shot_of(cdp, s, "document.getElementById('c_quarter').parentNode")
        assert quarter_png[:8] == b"\x89PNG\r\n\x1a\n" and len(quarter_png) > 5_000
        (
            REPO_ROOT / "docs" / "usage-quarters.png"
            if os.environ.get("UPDATE_SCREENSHOTS")
            else (tmp_path / "usage-quarters.png")
        ).write_bytes(quarter_png)
        # the outlook: the cheapest windows and the month's peaks, as the API says
        out = json.loads(
            cdp.eval(s, "fetch('/api/usage?resolution=hour').then(function(r){return r.text()})")
        )["outlook"]
        cdp.wait(s, "document.querySelectorAll('#o_cheap tr').length == %d" % len(out["cheapest"]))
        assert len(out["cheapest"]) == 3
        cells = cdp.eval(
            s,
            "Array.prototype.map.call(document.querySelectorAll('#o_cheap td'),"
            "function(td){return td.textContent}).join('|')",
        )
        for w in out["cheapest"]:
            assert "from " + w["start_local"][5:10] + " " + w["start_local"][11:16] in cells
            assert "%.2f ct/kWh" % w["avg_ct_kwh"] in cells
        top = out["peaks"]["top"]
        assert top and cdp.eval(s, "document.getElementById('s_peak').textContent") == "%.2f" % (
            top[0]["w"] / 1000
        )
        assert "heading for" in cdp.eval(s, "document.getElementById('q_now').textContent")
        (
            REPO_ROOT / "docs" / "usage-outlook.png"
            if os.environ.get("UPDATE_SCREENSHOTS")
            else (tmp_path / "usage-outlook.png")
        ).write_bytes(_shot_of(cdp, s, "document.getElementById('o_cheap').parentNode.parentNode"))
        api = json.loads(
            cdp.eval(
                s,
                "fetch('/api/usage?resolution=day').then(function(r){return r.text()})",
            )
        )
        today = api["rows"][-1]
        shown = cdp.eval(s, "document.getElementById('s_today').textContent")
        assert shown.rstrip(" *") == "%.1f" % (today["import_wh"] / 1000)
        cdp.eval(
            s,
            "document.querySelectorAll('#c_day .hit')[29]"
            ".dispatchEvent(new MouseEvent('click',{bubbles:true}))",
        )
        tip = cdp.eval(s, "document.getElementById('t_day').textContent")
        yesterday = api["rows"][-2]
        assert (
            tip.startswith(yesterday["label"])
            and "%.1f kWh" % (yesterday["import_wh"] / 1000) in tip
        )
        assert "cost" in tip
        gaps = cdp.eval(s, "document.querySelectorAll('#c_month rect[fill=\\'#ccc\\']').length")
        assert gaps == 10  # months before the data (2026-05-16 .. 06-25) are gaps, not zero
        external = cdp.eval(
            s,
            "performance.getEntriesByType('resource').filter(function(e){"
            "return e.name.indexOf(location.origin) != 0}).length",
        )
        assert external == 0  # no external resources
        time.sleep(0.3)
        shot = cdp.call("Page.captureScreenshot", s, format="png", captureBeyondViewport=True)
        usage_png = base64.b64decode(shot["data"])
        assert usage_png[:8] == b"\x89PNG\r\n\x1a\n" and len(usage_png) > 10_000
        usage_out = (
            REPO_ROOT / "docs" / "usage.png"
            if os.environ.get("UPDATE_SCREENSHOTS")
            else (tmp_path / "usage.png")
        )
        usage_out.write_bytes(usage_png)
        # the screenshot for the README
        cdp.call("Page.navigate", s, url=base + "/")
        cdp.wait(
            s,
            "!!document.querySelector('#chart svg path') && "
            "/^-?\\d+$/.test(document.getElementById('p_in').textContent) && "
            "document.getElementById('counters').rows.length > 5",
        )
        time.sleep(0.5)
        shot = cdp.call("Page.captureScreenshot", s, format="png", captureBeyondViewport=True)
        png = base64.b64decode(shot["data"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        # `make screens` (UPDATE_SCREENSHOTS=1) refreshes the README's picture; a plain test run
        # leaves the working tree alone
        out = (
            REPO_ROOT / "docs" / "web.png"
            if os.environ.get("UPDATE_SCREENSHOTS")
            else (tmp_path / "web.png")
        )
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(png)
    finally:
        _stop(cdp)
        stop.set()
        runner.join(10)
        sim.close()
    c = sim.app.state.counters
    assert cdp.challenges >= 1  # the browser was asked for the password
    assert c.decoded == c.csv_rows > 0
    assert c.http_requests > 5 and out.exists()


def _sim_for_page(tmp_path, layout, **extra):
    from sim.hardware import SimClock
    from sim.meter import PROFILES
    from sim.run import Simulation

    port = _free_port()
    values = {
        "METER_KEY": "36C66639E48A8CA4D6BC8B282A793BBB",
        "METER_AUTH_KEY": "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF",
        "LOG_DIR": "/sd/logs",
        "LOG_MIN_FREE_MB": 1,
        "WEB_PORT": port,
        "WEB_PASSWORD": PASSWORD,
        "CIRCUITPY_WIFI_SSID": "home-wifi",
        "UI_LANGUAGE": "en",
        "METER_TRANSPORT": {"amis": "amis", "hdlc-wn": "hdlc"}[PROFILES[layout][0]],
    }
    values.update(extra)
    sim = Simulation(
        values,
        data_dir=str(tmp_path / layout),
        layout=layout,
        clock=SimClock(speed=5, start_epoch=START_EPOCH),
        display="none",
        quiet=True,
    )
    if sim.app.web.ticks != sim.clock.ticks_ms:
        sim.app.web.ticks = sim.clock.ticks_ms
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            sim.step()
            time.sleep(0.002)

    runner = threading.Thread(target=loop, daemon=True)
    runner.start()
    return sim, port, stop, runner


def test_page_of_a_meter_that_sends_less_and_of_amis_without_tx(tmp_path, browser):
    """Wiener Netze: no phase table, a sentence instead, reactive values; AMIS without the TX
    line: the page says so."""
    cdp = None
    sims = []
    try:
        cdp = Cdp(browser, ("admin", PASSWORD))
        s = open_tab(cdp)
        sims.append(_sim_for_page(tmp_path, "wienernetze"))
        cdp.call("Page.navigate", s, url="http://127.0.0.1:%d/" % sims[-1][1])
        cdp.wait(s, "/^-?\\d+$/.test(document.getElementById('q_in').textContent)")
        assert cdp.eval(s, "document.getElementById('phase_card').hidden") is True
        assert cdp.eval(s, "document.getElementById('no_phases').hidden") is False
        assert cdp.eval(s, "document.getElementById('q_card').hidden") is False
        assert cdp.eval(s, "document.getElementById('r_row').hidden") is False
        text = cdp.eval(s, "document.body.innerText")
        assert "This meter sends no voltages and no currents." in text
        assert "U (V)" not in text  # the phase table is not shown
        sims.append(_sim_for_page(tmp_path, "amis"))  # PIN_METER_TX not set
        cdp.call("Page.navigate", s, url="http://127.0.0.1:%d/" % sims[-1][1])
        cdp.wait(s, "document.body.innerText.indexOf('AMIS needs the TX line') >= 0", 30)
        cdp.wait(s, "document.getElementById('sys').textContent.indexOf('no TX line') >= 0")
        assert sims[-1][0].meter.sent == 0 and sims[-1][0].uart.writes == 0
    finally:
        for sim, _port, stop, runner in sims:
            stop.set()
            runner.join(5)
            sim.close()
        _stop(cdp)
