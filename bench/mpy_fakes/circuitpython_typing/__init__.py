# See typing.py: only imported off CircuitPython.
ReadableBuffer = WriteableBuffer = object
