"""The soak's short form (the full 24 board hours: ``make bench BENCH_ARGS=soak``): the release
zip in the board in a box at the PSRAM heap (2M), one telegram a board second with the box
clock 10x faster, the web page polled every 2 board seconds, MQTT to Mosquitto and Graphite to
a line counter: three board minutes, nothing lost, no MemoryError, the live heap flat.

Runs when ``CIRCUITPYTHON`` names the VM; skips otherwise (a fresh clone stays green).
"""

from __future__ import annotations

import sys

from _support import REPO_ROOT, require, which
from test_board_system import VM, pytestmark  # noqa: F401 - skips without the VM

MINUTES = 3


def test_three_board_minutes_lose_nothing_and_keep_the_heap_flat(tmp_path):
    require(which("mosquitto"), "mosquitto (the MQTT broker) is not installed")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from bench import board_bench

    release = board_bench.build_release(tmp_path / "dist")
    lines = []
    res = board_bench.soak(
        VM, hours=MINUTES / 60, speed=10, heap="2M", out=lines.append, release=release, every=60
    )
    c = res["counters"]
    assert res["boots"] == ["POWER_ON"] and res["ended"] is None
    assert res["sent"] == MINUTES * 60
    assert res["lost"] == 0 and res["overflow"] == 0, res
    assert c["memory_errors"] == 0 and c["csv_errors"] == 0 and c["duplicates"] == 0
    assert res["rows"] == c["csv_rows"] == c["decoded"]
    assert res["polls"]["ok"] >= MINUTES * 20 and res["polls"]["failed"] == 0, res["polls"]
    assert res["mqtt_states"] >= c["decoded"] - 2
    assert res["graphite_lines"] > c["decoded"]
    assert len(res["hours"]) == MINUTES, lines  # one row a board minute here
    lives = [r["live_free"] for r in res["hours"]] + [res["final"]["live_free"]]
    assert max(lives) - min(lives) < 16_384, lives  # flat: no leak per telegram
    assert all(r["standins"] > 8000 for r in res["hours"])  # reported for the figures
