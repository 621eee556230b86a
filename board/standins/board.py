# SPDX-License-Identifier: MIT
"""``board`` stand-in: an ESP32-S3 DevKitC-style board (pins named IO0..IO48).

Imitates adafruit/circuitpython ports/espressif/boards/espressif_esp32s3_devkitc_1_n8r8/pins.c:
every usable GPIO as ``IOn`` (the names settings.toml uses: IO18 meter RX, IO9..IO14 TFT, IO38..
IO47 SD card, IO4/IO5 buttons, IO1/IO2 I2C), ``TX``/``RX`` (IO43/IO44), ``NEOPIXEL`` (IO48),
``board_id``. No default buses (``board.SPI()`` etc. do not exist on this board).
"""

from microcontroller import pin as _pin

board_id = "espressif_esp32s3_devkitc_1_n8r8"

for _name in dir(_pin):
    if _name.startswith("GPIO"):
        globals()["IO" + _name[4:]] = getattr(_pin, _name)

TX = _pin.GPIO43
RX = _pin.GPIO44
NEOPIXEL = _pin.GPIO48
