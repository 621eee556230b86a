"""Buttons and display through the real loop: App.loop_once with the real Ui on Blinka's
displayio and the real ST7735R driver, keys from a keypad-style event queue."""

from sim.display import make_png_display
from sim.hardware import Console, Hardware, ManualClock, SimKeys, SimRadio, SimUart
from sim.meter import VirtualMeter
from smartmeter import app as app_mod
from smartmeter import config
from smartmeter.timeutil import epoch_from_fields
from smartmeter.ui.screens import CYCLE

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"

NEXT, ENTER = 0, 1


class Rig:
    def __init__(self, timeout_s=120):
        self.clock = ManualClock(start_epoch=epoch_from_fields((2024, 5, 1, 10, 0, 0)))
        self.keys = SimKeys()
        self.uart = SimUart()
        display, self.snapshot = make_png_display()
        values = {"METER_KEY": KEY, "DISPLAY_TIMEOUT_S": timeout_s, "UI_LANGUAGE": "en"}
        values["CIRCUITPY_WIFI_SSID"] = "home"
        cfg = config.load(lambda _n: None, values)
        hw = Hardware(
            uart=self.uart,
            display=display,
            keys=self.keys,
            radio=SimRadio(),
            clock=self.clock,
            console=Console(out=None, interactive=False),
        )
        self.app = app_mod.build(hw, cfg, web=False)
        self.ui = self.app.ui
        self.meter = VirtualMeter("netznoe", bytes.fromhex(KEY), None, seed=3)

    def telegram(self):
        self.uart.push(self.meter.telegram(self.clock.epoch))
        self.passes(1)

    def passes(self, n, ms=100):
        for _ in range(n):
            self.app.loop_once()
            self.clock.advance(ms)

    def press(self, key):
        self.keys.press(key)
        self.passes(1)


def test_next_cycles_the_screens_through_the_loop():
    rig = Rig()
    rig.telegram()
    assert rig.ui.screen_name() == "status"
    seen = []
    for _ in range(len(CYCLE)):
        rig.press(NEXT)
        seen.append(rig.ui.screen_name())
    # on the menu, NEXT moves the cursor; past the last item it leaves the menu
    assert seen == ["phases", "power", "energy", "usage", "tariff", "env", "menu", "menu"]
    assert tuple(seen[:-1]) == CYCLE[1:]
    assert rig.ui.menu_index == 1
    rig.press(NEXT)
    rig.press(NEXT)
    assert rig.ui.screen_name() == "status"


def test_menu_restart_asks_then_restarts_the_app():
    rig = Rig()
    rig.telegram()
    for _ in range(CYCLE.index("menu")):
        rig.press(NEXT)
    assert rig.ui.screen_name() == "menu"
    rig.press(ENTER)  # "restart" is the first item
    assert rig.ui.screen_name() == "confirm"
    assert not rig.app.restart_requested
    rig.press(NEXT)  # no
    assert rig.ui.screen_name() == "menu" and not rig.app.restart_requested
    rig.press(ENTER)
    rig.press(ENTER)  # yes
    assert rig.app.restart_requested


def test_menu_setup_mode_opens_the_access_point():
    rig = Rig()
    rig.telegram()
    for _ in range(CYCLE.index("menu")):
        rig.press(NEXT)
    rig.press(NEXT)  # -> sysinfo item
    rig.press(NEXT)  # -> setup item
    rig.press(ENTER)
    rig.passes(3)
    assert rig.app.state.ap_mode and rig.app.hw.radio.ap is not None
    assert rig.app.state.ap_password  # shown on the system screen, nowhere else


def test_backlight_timeout_and_wake_only_first_press():
    rig = Rig(timeout_s=120)
    rig.telegram()
    rig.passes(1200, ms=100)  # 120 s without a press
    assert not rig.ui.lit and rig.app.hw.display.brightness == 0
    changes = rig.ui.changes
    rig.telegram()  # telegrams keep coming: nothing is drawn while dark
    assert rig.ui.changes == changes
    rig.press(NEXT)  # wakes only
    assert rig.ui.lit and rig.ui.screen_name() == "status"
    rig.press(NEXT)
    assert rig.ui.screen_name() == "phases"


def test_presses_queued_while_the_loop_was_busy_are_not_lost():
    rig = Rig()
    rig.telegram()
    for _ in range(3):  # three presses arrive during one long pass
        rig.keys.press(NEXT)
    rig.passes(1)
    assert rig.ui.screen_name() == "energy"
