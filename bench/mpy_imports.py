# Runs INSIDE the MicroPython VM (bench/__main__.py starts it): heap retained by imports.
# Each group is imported in a fresh VM run (argv[1] names it), so the figures do not overlap.
# Retained = gc.mem_alloc() after import and gc.collect() minus the same before.
import gc
import sys

GROUPS = {
    "boot": ("smartmeter.app", "smartmeter.config"),
    "csv": ("smartmeter.datalog.csvlog",),
    "graphite": ("smartmeter.outputs.graphite",),
    "influx": ("smartmeter.outputs.influx",),
    "mqtt": ("smartmeter.outputs.mqtt",),
}

name = sys.argv[1]
gc.collect()
before = gc.mem_alloc()
try:
    for mod in GROUPS[name]:
        __import__(mod)
except ImportError as exc:
    print("import %s n/a (%s)" % (name, exc))
else:
    gc.collect()
    print("import %s retained_bytes %d" % (name, gc.mem_alloc() - before))
