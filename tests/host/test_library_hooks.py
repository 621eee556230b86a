"""The firmware reaches into private parts of a bundle library; at the pinned versions
(requirements-device.txt = requirements-dev.txt) those parts exist with the expected shape.

The private names are found by reading our code: every ``_name`` it uses that one of the
library classes defines (as a method or as an attribute set in ``__init__``) must be listed in
HOOKS below with its check, so a new hook cannot slip in unchecked and a library update that
renames or reshapes one fails here instead of on the board.
"""

import ast
import inspect
import re
import socket
import sys
from pathlib import Path

import pytest
from adafruit_httpserver import Request, Response, Server
from adafruit_httpserver import server as server_mod

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import release  # noqa: E402

OUR_FILES = sorted((ROOT / "smartmeter").rglob("*.py"))
LIBRARY_CLASSES = (Server, Response, Request)


def params(fn):
    return list(inspect.signature(fn).parameters)


def _instances():
    server = Server(socket, None)
    request = Request(server, None, ("127.0.0.1", 1), b"GET /x?a=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    response = Response(request, "body", content_type="text/plain")
    return server, request, response


def check_receive_request():
    assert params(Server._receive_request)[:3] == ["self", "sock", "client_address"]
    # poll() calls it with (conn, client_address) and treats None as "nothing to answer"
    src = inspect.getsource(Server.poll)
    assert "self._receive_request(conn, client_address)) is None" in src


def check_find_handler():
    assert params(Server._find_handler) == ["self", "method", "path"]
    src = inspect.getsource(Server.poll)
    assert "self._find_handler(request.method, request.path)" in src


def check_send_headers():
    assert params(Response._send_headers) == ["self", "content_length", "content_type"]


def check_send():
    assert params(Response._send) == ["self"]
    # the server sends a handler's response through _send()
    assert "_send()" in inspect.getsource(server_mod)


def check_status():
    _s, _r, response = _instances()
    assert response._status.code == 200


def check_content_type():
    _s, _r, response = _instances()
    assert response._content_type == "text/plain"


def check_request():
    _s, request, response = _instances()
    assert response._request is request
    assert request.connection is None and request.path == "/x"


def check_send_bytes():
    # Reply overrides it: every body and header write of a Response goes through it
    assert params(Response._send_bytes) == ["self", "conn", "buffer"]
    src = inspect.getsource(Response)
    assert "self._send_bytes(" in inspect.getsource(Response._send_headers)
    assert src.count("self._send_bytes(") >= 2  # headers and body


def check_size():
    # the count of bytes sent: set to 0 in __init__, added to by _send_bytes (ours too)
    _s, _r, response = _instances()
    assert response._size == 0
    assert "self._size += " in inspect.getsource(Response._send_bytes)


def check_sock():
    # our intake accepts from the listening socket itself; start() leaves it non-blocking
    server = Server(socket, None)
    server.start("127.0.0.1", 0)
    try:
        assert server._sock.getsockname()[0] == "127.0.0.1"
        with pytest.raises(BlockingIOError):
            server._sock.accept()  # nothing waiting: raises at once, never blocks a pass
    finally:
        server.stop()


def check_set_default_server_headers():
    assert params(Server._set_default_server_headers) == ["self", "response"]
    server, _r, response = _instances()
    server.headers = {"X-Frame-Options": "DENY"}
    server._set_default_server_headers(response)
    assert response._headers.get("X-Frame-Options") == "DENY"


def check_create_server_socket():
    # ours replaces it (closes a socket whose bind failed): start() must still call it, as a
    # static method with these parameters, and keep what it returns as the listening socket
    assert isinstance(inspect.getattr_static(Server, "_create_server_socket"), staticmethod)
    assert params(Server._create_server_socket) == ["socket_source", "ssl_context", "host", "port"]
    assert "self._sock = self._create_server_socket(" in inspect.getsource(Server.start)


HOOKS = {
    "_sock": check_sock,
    "_create_server_socket": check_create_server_socket,
    "_set_default_server_headers": check_set_default_server_headers,
    "_receive_request": check_receive_request,
    "_find_handler": check_find_handler,
    "_send_headers": check_send_headers,
    "_send": check_send,
    "_status": check_status,
    "_content_type": check_content_type,
    "_request": check_request,
    "_send_bytes": check_send_bytes,
    "_size": check_size,
}


def library_privates():
    names = set()
    for cls in LIBRARY_CLASSES:
        names |= {n for n in dir(cls) if n.startswith("_") and not n.startswith("__")}
        for klass in cls.__mro__:
            if klass.__module__.startswith("adafruit_httpserver"):
                src = inspect.getsource(klass)
                names |= set(re.findall(r"self\.(_[a-z]\w*)\s*(?::[^=\n]+)?=", src))
    return names


def our_privates():
    """Private names our code takes from library objects.

    ``obj._x`` on anything but ``self``, ``getattr(obj, "_x")``, and in our subclasses of the
    library classes every ``self._x`` and every ``def _x`` (overrides). Names of our own other
    classes (``self._x`` there) are ours, even where a library happens to use the same name.
    """
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in OUR_FILES]
    library_bases = {cls.__name__ for cls in LIBRARY_CLASSES}
    grown = True
    while grown:  # our subclasses of our subclasses (Stream(Reply), Reply(Response)) count too
        grown = False
        for tree in trees:
            for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
                bases = {getattr(b, "id", getattr(b, "attr", None)) for b in cls.bases}
                if bases & library_bases and cls.name not in library_bases:
                    library_bases.add(cls.name)
                    grown = True
    names = set()
    for tree in trees:
        subclass_nodes = set()
        for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
            bases = {getattr(b, "id", getattr(b, "attr", None)) for b in cls.bases}
            if bases & library_bases:
                for node in ast.walk(cls):
                    subclass_nodes.add(id(node))
                    if isinstance(node, ast.FunctionDef) and node.name.startswith("_"):
                        names.add(node.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and re.match(r"_[a-z]", node.attr):
                on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
                if not on_self or id(node) in subclass_nodes:
                    names.add(node.attr)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr":
                arg = node.args[1] if len(node.args) > 1 else None
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("_"):
                    names.add(arg.value)
    return names


def test_libraries_are_the_pinned_versions():
    import importlib.metadata

    pins = {dist: ver for _m, dist, ver in release.device_libraries()}
    dist = "adafruit-circuitpython-httpserver"
    assert importlib.metadata.version(dist) == pins[dist]


def test_every_hook_used_by_our_code_is_checked():
    used = our_privates() & library_privates()
    assert used == set(HOOKS), "hooks used but not checked: %s; checked but no longer used: %s" % (
        sorted(used - set(HOOKS)),
        sorted(set(HOOKS) - used),
    )


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_exists_with_expected_shape(name):
    HOOKS[name]()
