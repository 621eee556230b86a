# SPDX-License-Identifier: MIT
"""Board entry point: :func:`smartmeter.device.main` boots and returns the firmware, this runs it.

In a release zip the firmware is compiled to .mpy for one CircuitPython major version and
``make release`` stamps that version into ``BUILT_FOR`` below (this file stays source: it must
load on any version). When the board runs another version, importing the firmware raises
ValueError ("incompatible .mpy file"): this file catches it and says on the serial console and
the display which version the release is for, which the board runs, and what to download
(``notice.py``: loaded only then, so a running board does not hold it).
"""

import sys

BUILT_FOR = None  # make release writes the CircuitPython major version here ("10")


def start(impl=sys.implementation):
    """Import and run the firmware; report an .mpy the board cannot load in plain words."""
    try:
        from smartmeter import device
    except MemoryError:
        return _no_memory()
    except ValueError as exc:
        if ".mpy" not in str(exc):
            raise
        from notice import mismatch_text, show

        running = "%d.%d.%d" % tuple(impl.version[:3])
        show(mismatch_text(BUILT_FOR, running, str(exc)))
        return False
    try:
        firmware = device.main()
    except MemoryError:  # its first imports did not fit (later ones are handled in there)
        return _no_memory()
    del device  # the boot code leaves the heap (main() took it out of sys.modules)
    firmware.run()
    return True


def _no_memory():
    """The firmware's own modules do not fit the heap: nothing can run, say so."""
    sys.modules.pop("smartmeter.device", None)
    import gc

    gc.collect()
    from notice import show

    show(
        "CSV logging off: not enough memory\n"
        "smartmeter: not enough memory to load the firmware: use a board with PSRAM"
    )
    return False


# CircuitPython runs this file; on a PC the name "code" belongs to the standard library (pdb
# imports it), so importing this file there must do nothing.
if sys.implementation.name == "circuitpython":
    if not start():
        import time

        while True:  # keep the message on the display; the serial console stays usable
            time.sleep(60)
