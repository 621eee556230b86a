# adafruit_httpserver imports these names off CircuitPython; the VM has no ssl module.
CERT_NONE = 0


class SSLError(OSError):
    pass


class Purpose:
    CLIENT_AUTH = 1
    SERVER_AUTH = 2


class SSLContext:
    pass


def create_default_context(*args, **kwargs):
    return SSLContext()
