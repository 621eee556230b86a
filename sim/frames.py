# SPDX-License-Identifier: MIT
"""Encoders for the transport framings (PC side): M-Bus long frames and HDLC/GBT frames.

The virtual meter of the simulator and the tests build their byte streams with these. With the
defaults the output has the shape of the real captures (``vectors/real-frames.json``): M-Bus
``C=53 A=FF``, TSAP ``01 67``, 245 data bytes per full frame (L = 0xFA); HDLC UI frames
(control 0x13) from server address 0x03 to client 0xCEFF (L+G E450) with LLC ``E6 E7 00``.
"""

from smartmeter.protocol.transport import crc16_x25

MBUS_C = 0x53
MBUS_A = 0xFF
TSAP = b"\x01\x67"
LLC = b"\xe6\xe7\x00"
T210_FIRST_DATA = 252  # 257-byte body = C A CI 01 67 + 252 data bytes, header 68 01 01 68


def mbus_long_frame(body):
    """One long frame around ``body`` (= C A CI ... data); L is written mod 256 like the T210-D.

    :param body: bytes from C to the end of the data (3..260 bytes)
    """
    ln = len(body) & 0xFF
    return bytes((0x68, ln, ln, 0x68)) + bytes(body) + bytes((sum(body) & 0xFF, 0x16))


def mbus_frames(payload, max_data=245, t210_overflow=False, c=MBUS_C, a=MBUS_A, tsap=TSAP):
    """Split an application payload into M-Bus long frames with the CI segment sequence.

    :param payload: application data (e.g. the ``DB 08 ...`` envelope)
    :param max_data: application bytes per frame after C A CI and the TSAP (245 gives the
        real meters' L = 0xFA; at most 250 so that L <= 255)
    :param t210_overflow: the first frame carries 252 data bytes (a 257-byte body) behind the
        header ``68 01 01 68``, like the Sagemcom T210-D
    :param tsap: the two TSAP bytes after the CI (``b""`` for none)
    :returns: the concatenated frames
    """
    payload = bytes(payload)
    if not 1 <= max_data <= 252 - len(tsap):
        raise ValueError("max_data out of range")
    chunks = []
    i = 0
    if t210_overflow:
        first = 257 - 3 - len(tsap)
        chunks.append(payload[:first])
        i = first
    while i < len(payload) or not chunks:
        chunks.append(payload[i : i + max_data])
        i += max_data
    if len(chunks) > 16:
        raise ValueError("payload needs more than 16 segments")
    out = bytearray()
    for seg, chunk in enumerate(chunks):
        ci = seg | (0x10 if seg == len(chunks) - 1 else 0)
        out += mbus_long_frame(bytes((c, a, ci)) + tsap + chunk)
    return bytes(out)


def axdr_length(n):
    """A-XDR length encoding (1, 2 or 3 bytes)."""
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    return bytes((0x82, n >> 8, n & 0xFF))


def hdlc_frame(info, dst=b"\xce\xff", src=b"\x03", ctrl=0x13, segmented=False):
    """One HDLC frame (format type 0xA) with HCS and FCS, flags on both ends.

    :param info: the information field (may be empty: then there is no FCS)
    :param dst: destination address bytes (the last one must have bit 0 set)
    :param src: source address bytes (the last one must have bit 0 set)
    """
    hlen = 2 + len(dst) + len(src) + 1 + 2
    flen = hlen + (len(info) + 2 if info else 0)
    if flen > 0x7FF:
        raise ValueError("HDLC frame too long")
    fmt = 0xA000 | (0x0800 if segmented else 0) | flen
    head = bytes((fmt >> 8, fmt & 0xFF)) + bytes(dst) + bytes(src) + bytes((ctrl,))
    hcs = crc16_x25(head)
    body = head + bytes((hcs & 0xFF, hcs >> 8))
    if info:
        body += bytes(info)
        fcs = crc16_x25(body)
        body += bytes((fcs & 0xFF, fcs >> 8))
    return b"\x7e" + body + b"\x7e"


def hdlc_frames(payload, max_info=128, segmented=True, llc=LLC, i_frames=False, **addr):
    """An APDU in HDLC frames: LLC in the first frame, HDLC segmentation if it does not fit.

    :param payload: the APDU (e.g. the ``DB 08 ...`` envelope)
    :param max_info: largest information field per frame
    :param segmented: if False, everything goes in one frame regardless of ``max_info``
    :param i_frames: number the frames as I-frames (control ``N(R)=0 P N(S)``) instead of UI
    :param addr: ``dst``, ``src``, ``ctrl`` for :func:`hdlc_frame` (KNG AM550: dst=b"\\xcf",
        src=b"\\x02\\x23")
    """
    data = bytes(llc) + bytes(payload)
    if not segmented:
        return hdlc_frame(data, **addr)
    out = bytearray()
    for k, i in enumerate(range(0, len(data), max_info)):
        if i_frames:
            addr["ctrl"] = 0x10 | ((k & 7) << 1)
        out += hdlc_frame(data[i : i + max_info], segmented=i + max_info < len(data), **addr)
    return bytes(out)


def gbt_block(data, block_no, last, ctrl=0x40, ack=0):
    """One General Block Transfer block: ``E0 ctrl blk(2) ack(2) len data``."""
    c = ctrl | (0x80 if last else 0)
    head = bytes((0xE0, c, block_no >> 8, block_no & 0xFF, ack >> 8, ack & 0xFF))
    return head + axdr_length(len(data)) + bytes(data)


def hdlc_gbt_frames(payload, max_info=129, block_size=None, llc=LLC, **addr):
    """An APDU as General Block Transfer blocks, one block per HDLC frame (L+G E450 shape).

    Only the first frame carries the LLC. Without ``block_size`` each block fills the
    information field (``max_info`` = 129 reproduces the real E450 capture: 119 + 122 + ...).

    :param block_size: fixed number of APDU bytes per block instead
    """
    payload = bytes(payload)
    blocks: list[bytes] = []
    i = 0
    while i < len(payload) or not blocks:
        room = block_size
        if room is None:
            room = max_info - (len(llc) if not blocks else 0) - 7
            if room >= 0x80:  # the A-XDR length takes 81 xx (or 82 hh ll)
                room -= 2 if room > 0x100 else 1
        blocks.append(payload[i : i + room])
        i += room
    out = bytearray()
    for k, data in enumerate(blocks):
        info = gbt_block(data, k + 1, k == len(blocks) - 1)
        out += hdlc_frame((bytes(llc) if k == 0 else b"") + info, **addr)
    return bytes(out)
