# SPDX-License-Identifier: MIT
"""One SNTP query under a deadline of our own (replaces ``adafruit_ntp`` on the board).

The request carries 8 random bytes as its transmit time; only a reply that echoes them as its
originate time, comes from the server we asked, is a server reply (mode 4) with a sane stratum
and a time after 2020 counts. Anything else - garbage, replies meant for someone else, a flood -
is read and dropped while the deadline runs, so a hostile or broken server costs at most
``timeout_ms`` (plus the DNS lookup) and can only set the clock if it sees our request.
"""

import os

from .netutil import timed_out

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


NTP_PORT = const(123)
_NTP_TO_UNIX = 2208988800
_MIN_EPOCH = const(1_577_836_800)  # 2020-01-01: an older answer is wrong
_READS_MAX = const(32)  # datagrams looked at per query (a flood cannot spin us longer)


def query(pool, server, ticks_ms, ticks_diff, timeout_ms=1000, port=NTP_PORT, addr=None):
    """UTC epoch seconds from ``server``, or None when no valid answer came in time.

    :param addr: a cached ``getaddrinfo`` sockaddr (skips DNS)
    :raises OSError: from DNS or the socket (not for a missing answer)
    """
    start = ticks_ms()
    if addr is None:
        addr = pool.getaddrinfo(server, port)[0][4]
    nonce = os.urandom(8)
    packet = bytearray(48)
    packet[0] = 0x23  # LI 0, version 4, mode 3 (client)
    packet[40:48] = nonce
    buf = bytearray(64)
    sock = pool.socket(pool.AF_INET, pool.SOCK_DGRAM)
    try:
        sock.settimeout(timeout_ms / 1000)
        sock.sendto(packet, addr)
        for _ in range(_READS_MAX):
            left = timeout_ms - ticks_diff(ticks_ms(), start)
            if left <= 0:
                return None
            sock.settimeout(left / 1000)
            try:
                n, source = sock.recvfrom_into(buf)
            except OSError as exc:
                if timed_out(exc):
                    return None
                raise
            epoch = _parse(buf, n, nonce)
            if epoch is not None and _same_host(source, addr):
                return epoch
        return None
    finally:
        sock.close()


def _parse(buf, n, nonce):
    if n < 48 or buf[0] & 7 != 4 or not 1 <= buf[1] <= 15:
        return None
    if bytes(buf[24:32]) != nonce:
        return None  # not the answer to our request (spoofed, late or garbage)
    seconds = int.from_bytes(bytes(buf[40:44]), "big") - _NTP_TO_UNIX
    return seconds if seconds >= _MIN_EPOCH else None


def _same_host(source, addr):
    try:
        return source[0] == addr[0] and source[1] == addr[1]
    except (TypeError, IndexError):
        return True  # a port that does not report the sender: the nonce alone decides
