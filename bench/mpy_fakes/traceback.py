# CircuitPython has traceback.print_exception (adafruit_httpserver imports it); the VM has not.
import sys


def print_exception(exc, value=None, tb=None, limit=None, file=None, chain=True):
    sys.print_exception(value if value is not None else exc)
