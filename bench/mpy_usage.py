# The usage summary under the MicroPython VM: heap of the rings, time per telegram.
import gc
import time

from smartmeter.datalog.usage import QUARTERS, Ring, Tariff, Usage
from smartmeter.datalog.usagefile import to_bytes

gc.collect()
before = gc.mem_alloc()
u = Usage(Tariff(price_mct=25000, feed_in_mct=8000))
print("heap of Usage(Tariff()): %d bytes" % (gc.mem_alloc() - before))
gc.collect()
before = gc.mem_alloc()
ring = Ring(QUARTERS)
print("of it the quarter ring (%d quarters): %d bytes" % (QUARTERS, gc.mem_alloc() - before))
ring = None
a = 10000000
n = 5000
t0 = time.ticks_us()
for k in range(n):
    a += 1 + k % 3
    u.add(1727733600 + 5 * k, a, k // 7)
dt = time.ticks_diff(time.ticks_us(), t0)
print("add(): %.0f us per telegram (VM on a PC, not the ESP32)" % (dt / n))
day = u.day_key(1727733600 + 5 * n)
t0 = time.ticks_us()
for _ in range(200):
    u.period(u.days, day)
print("period(): %.0f us" % (time.ticks_diff(time.ticks_us(), t0) / 200))
q = (1727733600 + 5 * n) // 900 - 20
t0 = time.ticks_us()
for _ in range(200):
    u.quarter(q)
print("quarter(): %.0f us (20 quarters back)" % (time.ticks_diff(time.ticks_us(), t0) / 200))
t0 = time.ticks_us()
data = to_bytes(u)
print("to_bytes(): %d us for %d bytes" % (time.ticks_diff(time.ticks_us(), t0), len(data)))
