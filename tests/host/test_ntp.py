"""SNTP under our own deadline (smartmeter/ntp.py) against real UDP servers on loopback.

A good server sets the time; a silent one, one that floods garbage, one that answers for
somebody else (wrong originate time) or from another address cannot hold the caller longer
than the deadline nor set the clock.
"""

import socket
import struct
import threading
import time

import pytest

from smartmeter import ntp
from smartmeter.timeutil import ticks_diff

EPOCH = 1_717_000_000
DEADLINE_MS = 1000


def ticks():
    return int(time.monotonic() * 1000) & 0x1FFFFFFF


def reply(request, epoch=EPOCH, stratum=2, mode=4, originate=None):
    out = bytearray(48)
    out[0] = 0x20 | mode  # version 4
    out[1] = stratum
    out[24:32] = request[40:48] if originate is None else originate
    struct.pack_into(">I", out, 40, epoch + 2208988800)
    return bytes(out)


class Server:
    def __init__(self, behave):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.behave = behave
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(512)
            except OSError:
                continue
            self.behave(self, data, addr)

    def send(self, data, addr, sock=None):
        (sock or self.sock).sendto(data, addr)
        self.sent += 1

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def timed_query(port):
    t0 = time.monotonic()
    got = ntp.query(socket, "127.0.0.1", ticks, ticks_diff, DEADLINE_MS, port)
    return got, time.monotonic() - t0


def good(server, data, addr):
    server.send(reply(data), addr)


def silent(server, data, addr):
    pass


def flood(server, data, addr):
    end = time.monotonic() + 3
    k = 0
    while time.monotonic() < end and not server.stop.is_set():
        server.send(bytes((k * 7 + i) & 255 for i in range(48)), addr)
        k += 1
        time.sleep(0.002)


def spoofed(server, data, addr):
    for _ in range(200):  # answers, but not to our request: the originate time is wrong
        server.send(reply(data, originate=b"\x00" * 8), addr)
    for bad in (reply(data, mode=3), reply(data, stratum=0), reply(data, epoch=1_000_000)):
        server.send(bad, addr)


def elsewhere(server, data, addr):
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.send(reply(data), addr, other)  # right answer, wrong sender port
    finally:
        other.close()


def test_a_good_server_sets_the_time():
    s = Server(good)
    try:
        got, took = timed_query(s.port)
    finally:
        s.close()
    assert got == EPOCH and took < 0.5


@pytest.mark.parametrize("behave", [silent, flood, spoofed, elsewhere], ids=lambda f: f.__name__)
def test_a_bad_server_costs_at_most_the_deadline_and_sets_nothing(behave):
    s = Server(behave)
    try:
        got, took = timed_query(s.port)
    finally:
        s.close()
    print("\n%s: %.0f ms, %d datagrams sent at us" % (behave.__name__, took * 1000, s.sent))
    assert got is None
    assert took < DEADLINE_MS / 1000 + 0.15, took


def test_runs_on_micropython(run_micropython):
    script = (
        "from smartmeter import ntp\n"
        "nonce = b'12345678'\n"
        "buf = bytearray(64)\n"
        "buf[0] = 0x24; buf[1] = 2; buf[24:32] = nonce\n"
        "buf[40:44] = (1717000000 + 2208988800).to_bytes(4, 'big')\n"
        "print(ntp._parse(buf, 48, nonce), ntp._parse(buf, 48, b'87654321'))\n"
    )
    rc, out, err = run_micropython(script, files=["smartmeter"])
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == "1717000000 None"
