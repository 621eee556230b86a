"""The board in a box against other meters and services: the line search from a wrong
remembered setting (in the nvm, as a board would have it) with day-ahead prices from a local
fake price server, and an AMIS meter that needs the E5 acknowledgement on the TX line.

The same checks pass against the simulator in test_linesearch.py and test_prices.py. Skipped
without ``CIRCUITPYTHON`` (see test_board_system.py).
"""

from __future__ import annotations

import json
import threading
import time
from fractions import Fraction
from http.server import ThreadingHTTPServer

import pytest
from test_board_system import VM, build_release, http_get, load_runner, pytestmark  # noqa: F401

from smartmeter.linesearch import LINES, line_name


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return build_release(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def price_api():
    from test_prices import FakeApi

    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    srv.daemon_threads = True
    srv.mode = "ok"
    srv.requests = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = "http://127.0.0.1:%d/v1/marketdata" % srv.server_port
    yield srv
    srv.shutdown()
    srv.server_close()


def test_line_search_from_a_wrong_remembered_setting_and_prices(tmp_path, release, price_api):
    from servers import free_port
    from test_prices import MARKUP, NOW, VAT, market

    run = load_runner()
    right = [k for k, line in enumerate(LINES) if line[0] == "2400 8E1"][0]  # Netz NOE: M-Bus
    wrong = (right + 1) % len(LINES)
    port = free_port()
    b = run.Board(
        VM,
        data_dir=tmp_path / "data",
        release=release,
        speed=20,
        out=None,
        http_port=port,
        start=NOW,
        nvm=bytes((0xA5, wrong)),  # device.LineMemory: the mark, then the index
        settings={
            "NTP_SERVER": "",
            "PRICE_DYNAMIC": True,
            "PRICE_API_URL": price_api.url,
            "PRICE_MARKUP_CT_KWH": MARKUP,
            "PRICE_VAT_PERCENT": VAT,
        },
    )
    try:
        b.start()
        b.wait_for("line: searching, trying %s" % LINES[wrong][0], timeout=30)
        b.wait_for("line: %s works" % LINES[right][0], timeout=60)
        b.run_until(lambda: b.sent >= b.sent_before_uart + 30, timeout=60)
        b.telegram_limit = b.sent  # the meter stops: counters and the card agree
        time.sleep(1)
        c = b.status()
        status, body = http_get(port, b.values["WEB_PASSWORD"], "/api/usage?resolution=day")
        assert status == 200
        usage = json.loads(body)
    finally:
        b.stop()
    assert c["line_switches"] == len(LINES) - 1  # each wrong setting tried once
    assert c["decoded"] > 0 and c["csv_rows"] == c["decoded"] == b.rows()
    nvm = (b.data_dir / "nvm.bin").read_bytes()
    assert nvm[:2] == bytes((0xA5, right))  # the found setting is remembered
    assert line_name(*b.meter.line) == LINES[right][0]
    # prices: fetched from the fake server, today's hour priced to the tenth of a cent
    assert price_api.requests, "the board never asked for prices"
    assert usage["prices"]["state"] == "ok" and usage["prices"]["failures"] == 0, usage["prices"]
    tariff = usage["tariff"]
    assert tariff["market_hours"] == 49, tariff  # today and tomorrow (25 h: summer time ends)
    hour = usage["now"] // 3600
    gross = (Fraction(str(market(hour))) / 10 + Fraction(MARKUP)) * (1 + Fraction(VAT) / 100)
    assert abs(tariff["price_now_ct_kwh"] - float(gross)) < 0.001, (tariff, float(gross))


def test_amis_meter_gets_an_e5_for_every_frame(tmp_path, release):
    run = load_runner()
    b = run.Board(
        VM,
        data_dir=tmp_path / "data",
        release=release,
        layout="amis",
        speed=4,  # a frame every 250 ms: the E5 must be back before the next one
        telegrams=25,
        meter_waits=True,  # its first link offer (SND_NKE) reaches a UART: no minute's wait
        out=None,
        start=1_782_381_600,
        settings={"NTP_SERVER": "", "METER_BAUD": 9600, "METER_PARITY": "even"},
    )
    meter = b.meter
    try:
        b.start()
        b.run_until(lambda: meter.sent >= 25, timeout=60)
        time.sleep(1)  # the last frame: read, decoded, logged, acknowledged
        c = b.status()
    finally:
        b.stop()
    assert meter.nke_sent >= 1 and meter.repeats == 0 and meter.silences == 0
    # every frame acknowledged (the last E5 may still be on its way to the meter)
    assert meter.acks_seen >= meter.sent + meter.nke_sent - 2
    assert c["acks_sent"] >= meter.sent and c["decoded"] >= meter.sent - 1
    assert c["csv_rows"] == c["decoded"] == b.rows()


def test_without_wifi_the_setup_access_point_opens_and_the_page_answers(tmp_path, release):
    from servers import free_port

    run = load_runner()
    port = free_port()
    b = run.Board(
        VM,
        data_dir=tmp_path / "data",
        release=release,
        speed=20,
        out=None,
        http_port=port,
        wifi=False,  # the network in settings.toml is not in range
        start=1_782_381_600,
        settings={"NTP_SERVER": ""},
    )
    try:
        b.start()
        b.wait_for("No network with that ssid", timeout=30)
        # the station keeps retrying; after 3 minutes (board time) the setup AP opens
        network = {}
        end = time.monotonic() + 60
        while time.monotonic() < end and not network.get("ap_mode"):
            time.sleep(1)
            try:
                status, body = http_get(port, b.values["WEB_PASSWORD"], "/api/status")
            except OSError:
                continue  # not listening yet
            assert status == 200  # the page answers without WiFi (at the AP's address)
            network = json.loads(body)["network"]
        c = b.status()
    finally:
        b.stop()
    assert network["ap_mode"] and network["ap_ssid"] == "smartmeter-sim-setup", network
    assert not network["connected"]
    assert c["decoded"] > 0 and c["csv_rows"] == c["decoded"]  # the meter is logged meanwhile
