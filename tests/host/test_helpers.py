"""The shared helpers: ``timeutil.Backoff``, ``netutil`` errno handling, ``outputs.ring``."""

import errno
import socket

import pytest

from smartmeter import netutil
from smartmeter.outputs.ring import ByteRing
from smartmeter.timeutil import Backoff

WRAP = 1 << 29


def test_backoff_doubles_caps_resets_and_survives_the_tick_wrap():
    b = Backoff(1000, 8000)
    now = WRAP - 1500  # the schedule crosses the wrap of the 29-bit ticks
    assert b.due(now)
    delays = []
    for _ in range(6):
        nxt = b.fail(now)
        assert not b.due(now) and not b.due((nxt - 1) % WRAP) and b.due(nxt)
        delays.append(b.left(now))
        now = nxt
    assert delays == [1000, 2000, 4000, 8000, 8000, 8000]
    assert b.failures == 6
    b.ok()
    assert b.due(now) and b.left(now) == 0 and b.failures == 0
    assert b.fail(now) == (now + 1000) % WRAP  # back at the minimum
    b.wait(now, 300)
    assert b.left(now) == 300 and b.delay == 1000  # a batch wait keeps the failure delay


def test_errno_helpers_on_real_socket_errors():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.close()  # nothing listens now
    with pytest.raises(OSError) as refused:
        socket.create_connection(("127.0.0.1", port), timeout=1)
    assert netutil.errno_of(refused.value) == netutil.ECONNREFUSED == errno.ECONNREFUSED
    assert not netutil.would_block(refused.value) and not netutil.timed_out(refused.value)
    a, b = socket.socketpair()
    a.setblocking(False)
    with pytest.raises(OSError) as empty:
        a.recv(10)
    assert netutil.would_block(empty.value)
    a.settimeout(0.01)
    with pytest.raises(OSError) as slow:
        a.recv(10)
    assert netutil.would_block(slow.value) and netutil.timed_out(slow.value)
    a.close()
    b.close()
    assert netutil.errno_of(OSError(28)) == 28  # MicroPython style: the code is args[0]
    assert netutil.errno_of(OSError("text")) is None
    assert not netutil.would_block(ValueError())


def _fill(ring, epoch, text):
    data = bytearray(text)
    ring.push(memoryview(data), len(data), epoch, text.count(b"\n"))


def test_ring_keeps_records_whole_drops_oldest_and_tracks_the_gap():
    ring = ByteRing(40, max_records=3)
    _fill(ring, 100, b"a 1 100\nb 2 100\n")  # 16 bytes, 2 items
    _fill(ring, 101, b"a 1 101\nb 2 101\n")  # 32 bytes
    assert (ring.count, ring.used, ring.queued, ring.dropped) == (2, 32, 4, 0)
    _fill(ring, 102, b"a 1 102\nb 2 102\n")  # does not fit: the oldest goes, this one wraps
    assert (ring.count, ring.used, ring.queued, ring.dropped) == (2, 32, 4, 2)
    assert (ring.gap_from, ring.gap_until) == (100, 101)
    _fill(ring, 103, b"a 1 103\n")  # 40 bytes: full
    _fill(ring, 104, b"a 1 104\n")  # four records but room for three: 101 goes
    assert (ring.count, ring.queued, ring.dropped) == (3, 4, 4)
    assert (ring.gap_from, ring.gap_until) == (100, 102)
    part, rest, items = ring.oldest()  # 102 wraps around the end of the ring
    assert len(rest) > 0 and bytes(part) + bytes(rest) == b"a 1 102\nb 2 102\n" and items == 2
    body = bytearray(64)
    n, records, items = ring.copy_out(body, 64)
    assert bytes(body[:n]) == b"a 1 102\nb 2 102\na 1 103\na 1 104\n" and (records, items) == (3, 4)
    n, records, items = ring.copy_out(body, 10)  # limit: still one whole record
    assert (n, records) == (16, 1)
    ring.pop(records)
    part, rest, items = ring.oldest()
    assert bytes(part) == b"a 1 103\n" and len(rest) == 0
    assert ring.count == 2 and ring.queued == 2
    _fill(ring, 200, b"x" * 41 + b"\n")  # larger than the ring: dropped, gap widened
    assert ring.dropped == 5 and (ring.gap_from, ring.gap_until) == (100, 201)


def test_ring_refill_walks_the_gap_and_commits_only_what_was_sent():
    ring = ByteRing(64)
    ring.mark_gap(10)
    ring.mark_gap(19)  # gap [10, 20)
    rows = [(8, {"v": 1}), (10, {"v": 2}), (12, {"v": 3}, {"t": 1}), (14, {"v": 4})]
    got = []
    nxt = ring.refill(rows, 4, lambda e, v, x: got.append((e, v, x)))
    assert got == [(10, {"v": 2}, {"v": 2}), (12, {"v": 3}, {"t": 1}), (14, {"v": 4}, {"v": 4})]
    assert nxt == 15 and ring.gap_from == 10  # nothing moves before commit
    ring.commit(nxt)
    assert (ring.gap_from, ring.gap_until) == (15, 20)
    assert ring.refill([(16, {})], 4, lambda *a: None) is None  # fewer rows than asked: closed
    ring.commit(None)
    assert ring.gap_from is None and ring.gap_until is None
