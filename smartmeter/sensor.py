# SPDX-License-Identifier: MIT
"""The HTE501 as a loop sink: polls the driver and mirrors its values into the state."""

from drivers.hte501 import HTE501


class SensorSink:
    """Optional temperature/humidity sensor. Absent hardware gives absent values, not errors."""

    name = "sensor"

    def __init__(self, i2c, state, clock):
        self.driver = HTE501(i2c, ticks_ms=clock.ticks_ms)
        self.state = state

    def poll(self, now_ms):
        d = self.driver
        d.poll(now_ms)
        st = self.state
        st.temperature = d.temperature
        st.humidity = d.humidity
        # "absent" before the first reading or when nothing answers at 0x40: optional hardware
        st.sensor_state = d.state
        st.counters.sensor_errors = d.errors
        st.counters.sensor_crc_errors = d.crc_errors
        if d.last_error:
            st.last_errors["sensor"] = d.last_error
