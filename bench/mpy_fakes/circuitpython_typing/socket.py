# See ../typing.py: only imported off CircuitPython.
CircuitPythonSocketType = InterfaceType = SocketpoolModuleType = SocketType = object
SSLContextType = object
