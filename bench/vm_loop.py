# Runs INSIDE a Python VM (CircuitPython VM, MicroPython VM, or CPython): the super-loop pass
# with a telegram and without, as bench/loop_bench.py measures it on CPython - the real
# firmware (smartmeter.app.build + App.loop_once: decode, state, CSV row) with a UART fed from a
# file of telegrams, the CSV on a real folder, the clock advanced by hand. bench/board_bench.py
# starts it.
#
# argv: TELEGRAMS.hex N ROOT [python]  (ROOT: a folder standing for "/"; "python": the
# pure-Python AES instead of the VM's aesio)
import gc
import sys
import time

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
START_EPOCH = 1_714_557_600  # 2024-05-01 10:00 UTC
IDLE = 20

if hasattr(time, "perf_counter_ns"):  # CPython
    _ns = time.perf_counter_ns
elif hasattr(time, "monotonic_ns"):  # CircuitPython
    _ns = time.monotonic_ns
else:  # MicroPython

    def _ns():
        return time.ticks_us() * 1000


class Clock:
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms & 0x3FFFFFFF

    def time(self):
        return START_EPOCH + self.ms // 1000


class Uart:
    def __init__(self):
        self.data = b""

    @property
    def in_waiting(self):
        return len(self.data)

    def readinto(self, buf):
        n = min(len(buf), len(self.data))
        if not n:
            return None
        buf[:n] = self.data[:n]
        self.data = self.data[n:]
        return n


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


class _Os:
    """The VM's os without sync(): the CSV folder here is the host's, and the unix VM's
    os.sync() syncs every host disk (milliseconds, varying with other programs); the CPython
    figure (loop_bench) writes without fsync too."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        if name == "sync":
            raise AttributeError(name)
        return getattr(self._real, name)


if sys.implementation.name == "circuitpython":
    import os

    sys.modules["os"] = _Os(os)


def main():
    path, n, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    backend = sys.argv[4] if len(sys.argv) > 4 else None
    from smartmeter import app as app_mod
    from smartmeter import config, hardware
    from smartmeter.datalog.sd import RealFS

    with open(path) as f:
        telegrams = [bytes.fromhex(line.strip()) for line in f if line.strip()]
    values = {"METER_KEY": KEY, "LOG_DIR": "/sd/logs", "LOG_MIN_FREE_MB": 1}
    cfg = config.load(lambda _n: None, values)
    clock = Clock()
    uart = Uart()
    kw = {"aes_backend": backend} if backend else {}
    hw = hardware.Hardware(
        uart=uart,
        fs=RealFS(fsync=False, root=root),
        log_dir="/sd/logs",
        clock=clock,
        mem_free=getattr(gc, "mem_free", None),
        **kw,
    )
    app = app_mod.build(hw, cfg, web=False)
    with_t = []
    idle = []
    for i in range(n):
        uart.data = telegrams[i % len(telegrams)]
        t0 = _ns()
        app.loop_once()
        with_t.append((_ns() - t0) // 1000)
        clock.ms += 250
        for _ in range(IDLE):
            t0 = _ns()
            app.loop_once()
            idle.append((_ns() - t0) // 1000)
            clock.ms += 4750 // IDLE
    c = app.state.counters
    print(
        "RESULT telegram_us %d idle_us %d telegram_max_us %d decoded %d csv_rows %d "
        "memory_errors %d"
        % (
            median(with_t),
            median(idle),
            max(with_t),
            c.decoded,
            c.csv_rows,
            c.memory_errors,
        )
    )


main()
