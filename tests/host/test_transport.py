"""Transport reader (smartmeter.protocol.transport) and the frame encoders (sim.frames).

Real captures in every chunking and at every frame boundary, the T210-D overflow frame,
garbage, truncation, bit flips, lying lengths, noise floods, segment/GBT sequence errors, HDLC
segmentation, payload overflow, and a hypothesis fuzz whose main property is that the output
does not depend on how the stream is chunked.
"""

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vectors import FRAMES, FRAMING_ONLY

from sim import frames
from smartmeter.protocol import transport
from smartmeter.protocol.errors import FrameError
from smartmeter.protocol.transport import FrameReader, crc16_x25

CAP = transport.RAW_CAPACITY
PCAP = transport.PAYLOAD_CAPACITY


def _axdr_len_size(n):
    return 1 if n < 0x80 else (2 if n < 0x100 else 3)


def _expected_len(v):
    """Payload length from the JSON alone (not from the reader): DB 08 title len SC FC ct [tag]."""
    exp = v["expected"]
    if "ciphertext_len" in exp:
        ct = exp["ciphertext_len"]
        tag = 12 if int(exp["security_control"], 16) & 0x10 else 0
    else:
        ct = len(v["plaintext_hex"]) // 2
        tag = 12 if v["auth_key"] else 0
    body = 1 + 4 + ct + tag
    return 10 + _axdr_len_size(body) + body


CAPTURES = [
    (v["id"], bytes.fromhex(v["raw_hex"]), v.get("transport", "mbus"), v["expected"])
    for v in FRAMES + FRAMING_ONLY
]
IDS = [c[0] for c in CAPTURES]
MBUS_RAW = CAPTURES[1][1]  # Netz NÖ Kaifa, 2 frames (250 + 20)
TINETZ_RAW = CAPTURES[2][1]
HDLC_RAW = CAPTURES[3][1]  # Burgenland E450, 1 frame
GBT_RAW = CAPTURES[5][1]  # E450 GBT, 3 frames


class Sink:
    """A reader plus everything it reported."""

    def __init__(self, transport_name="auto"):
        self.telegrams = []
        self.errors = []
        self.reader = FrameReader(self._on_telegram, transport_name, self.errors.append)

    def _on_telegram(self, payload, name):
        assert isinstance(payload, memoryview)
        assert len(payload) <= PCAP
        self.telegrams.append((bytes(payload), name))

    def feed(self, data, chunk=None):
        if chunk is None:
            self.reader.feed(data)
        else:
            for i in range(0, len(data), chunk):
                self.reader.feed(data[i : i + chunk])
        assert self.reader.buffered <= CAP
        return self

    def payloads(self):
        return [p for p, _ in self.telegrams]

    def counters(self):
        r = self.reader
        return (
            r.bytes_in,
            r.bytes_skipped,
            r.frames_ok,
            r.checksum_errors,
            r.framing_errors,
            r.telegrams,
            r.overflows,
            r.buffered,
        )


def decode_one(raw):
    s = Sink().feed(raw)
    assert len(s.telegrams) == 1
    return s.telegrams[0][0]


PAYLOADS = {ident: decode_one(raw) for ident, raw, _, _ in CAPTURES}


def mbus_split(stream):
    """Split a clean M-Bus stream into frames (test helper; knows the T210 rule too)."""
    out = []
    i = 0
    while i < len(stream):
        ln = stream[i + 1]
        ln = ln + 256 if ln < 3 else ln
        out.append(stream[i : i + ln + 6])
        i += ln + 6
    return out


# -- CRC -----------------------------------------------------------------------------------------


def test_crc16_x25_check_value_and_chaining():
    assert crc16_x25(b"123456789") == 0x906E  # the catalogue check value of CRC-16/X.25
    assert crc16_x25(b"") == 0
    data = bytes(range(256)) * 3
    assert crc16_x25(data[100:], crc16_x25(data[:100])) == crc16_x25(data)
    assert crc16_x25(memoryview(bytearray(data))) == crc16_x25(data)


def test_crc_fast_path_equals_table_version():
    rng = random.Random(11)
    for n in (0, 1, 2, 7, 100, 600):
        data = rng.randbytes(n)
        for init in (0, 0x1234, 0xFFFF):
            assert transport.crc16_x25_py(data, init) == crc16_x25(data, init)
    assert transport.crc16_x25_py(b"123456789") == 0x906E


def test_crc_matches_real_hcs_and_fcs():
    raw = HDLC_RAW  # 7E A0 76 CE FF 03 13 | HCS 3C 02 | ... | FCS | 7E
    assert crc16_x25(raw[1:7]) == raw[7] | raw[8] << 8
    assert crc16_x25(raw[1:-3]) == raw[-3] | raw[-2] << 8


# -- real captures -------------------------------------------------------------------------------


@pytest.mark.parametrize("ident,raw,kind,expected", CAPTURES, ids=IDS)
def test_real_capture_whole(ident, raw, kind, expected):
    s = Sink().feed(raw)
    assert len(s.telegrams) == 1
    payload, name = s.telegrams[0]
    assert name == ("mbus" if kind == "mbus" else "hdlc")
    assert len(payload) == _expected_len(next(v for v in FRAMES + FRAMING_ONLY if v["id"] == ident))
    assert payload[:2] == b"\xdb\x08"
    assert payload[2:10].hex().upper() == expected["system_title"]
    r = s.reader
    assert (r.checksum_errors, r.framing_errors, r.overflows, r.bytes_skipped) == (0, 0, 0, 0)
    assert r.frames_ok == {"mbus": len(mbus_split(raw)), "hdlc": 1, "hdlc-gbt": 3}[kind]
    assert r.telegrams == 1 and r.bytes_in == len(raw) and not s.errors
    if "mbus_frames" in expected:  # VKW: 250 + 114 = L fields of the two frames
        assert [len(f) - 6 for f in mbus_split(raw)] == expected["mbus_frames"]


@pytest.mark.parametrize("ident,raw,kind,expected", CAPTURES, ids=IDS)
def test_real_capture_every_chunk_size(ident, raw, kind, expected):
    want = PAYLOADS[ident]
    for chunk in range(1, len(raw) + 1):
        s = Sink().feed(raw, chunk)
        assert s.payloads() == [want], chunk
        assert not s.errors


@pytest.mark.parametrize("ident,raw,kind,expected", CAPTURES, ids=IDS)
def test_encoder_reproduces_capture_byte_exact(ident, raw, kind, expected):
    payload = PAYLOADS[ident]
    if kind == "mbus":
        assert frames.mbus_frames(payload) == raw
    elif kind == "hdlc":
        dst, src = (raw[3:4], raw[4:6]) if raw[3] & 1 else (raw[3:5], raw[5:6])
        assert frames.hdlc_frames(payload, dst=dst, src=src, segmented=False) == raw
    else:
        assert frames.hdlc_gbt_frames(payload) == raw


def test_concatenated_captures_split_at_every_offset():
    rng = random.Random(1234)
    order = list(range(len(CAPTURES))) * 2
    rng.shuffle(order)
    stream = b"".join(CAPTURES[i][1] for i in order)
    want = [PAYLOADS[CAPTURES[i][0]] for i in order]
    assert Sink().feed(stream).payloads() == want
    for cut in range(1, len(stream)):
        s = Sink()
        s.feed(stream[:cut])
        s.feed(stream[cut:])
        assert s.payloads() == want, cut
    for _ in range(30):  # random chunkings, including chunks larger than the raw buffer
        s = Sink()
        i = 0
        while i < len(stream):
            k = rng.choice((1, 2, 3, 7, 64, 300, 1500, 5000))
            s.feed(stream[i : i + k])
            i += k
        assert s.payloads() == want
        assert s.reader.buffer_high_water <= CAP


def test_transport_names_and_filters():
    both = MBUS_RAW + HDLC_RAW
    assert [n for _, n in Sink().feed(both).telegrams] == ["mbus", "hdlc"]
    assert [n for _, n in Sink("mbus").feed(both).telegrams] == ["mbus"]
    assert [n for _, n in Sink("hdlc").feed(both).telegrams] == ["hdlc"]
    with pytest.raises(ValueError):
        FrameReader(print, "wmbus")


# -- M-Bus specifics ---------------------------------------------------------------------------


def test_t210_overflow_frame():
    payload = PAYLOADS["netznoe-kaifa-ma309m-real"]
    wire = frames.mbus_frames(payload, t210_overflow=True)
    assert wire[:4] == b"\x68\x01\x01\x68"
    assert wire[263:264] == b"\x68" and wire[264] == 13  # second frame at 263, body 257 + 13
    for chunk in (1, 2, 7, 64, 262, 263, 264, len(wire)):
        assert Sink().feed(wire, chunk).payloads() == [payload]
    s = Sink().feed(b"\x68\x01\x01" + wire + bytes(range(0x60, 0x70)) + wire)
    assert s.payloads() == [payload, payload]


def test_tsap_only_stripped_when_present():
    data = b"\xdb\x08" + bytes(range(50))
    no_tsap = frames.mbus_frames(data, max_data=20, tsap=b"")
    assert Sink().feed(no_tsap).payloads() == [data]
    # the first segment carries 01 67, a later one does not: the telegram is discarded
    f = mbus_split(frames.mbus_frames(data, max_data=20))
    bad = f[0] + frames.mbus_long_frame(b"\x53\xff\x11" + data[20:])
    s = Sink().feed(bad + frames.mbus_frames(data))
    assert s.payloads() == [data] and s.reader.framing_errors == 1


def test_single_segment_and_many_segments():
    data = bytes(random.Random(3).randrange(256) for _ in range(1500))
    wire = frames.mbus_frames(data, max_data=200)
    assert len(mbus_split(wire)) == 8
    assert Sink().feed(wire, 5).payloads() == [data]
    assert Sink().feed(frames.mbus_frames(b"\x0f\x01")).payloads() == [b"\x0f\x01"]


def test_garbage_before_between_and_inside():
    rng = random.Random(7)

    def junk(n):
        return bytes(rng.choice((0x68, 0x7E, 0x16, 0xA0, rng.randrange(256))) for _ in range(n))

    caps = [c[1] for c in CAPTURES]
    stream = b"".join(junk(rng.randrange(1, 300)) + raw for raw in caps) + junk(50)
    want = [PAYLOADS[c[0]] for c in CAPTURES]
    for chunk in (1, 13, 256, len(stream)):
        assert Sink().feed(stream, chunk).payloads() == want
    # garbage inside the first frame kills that telegram only
    raw = MBUS_RAW
    s = Sink().feed(raw[:100] + junk(40) + raw[100:] + raw)
    assert s.payloads() == [PAYLOADS["netznoe-kaifa-ma309m-real"]]
    assert s.reader.checksum_errors + s.reader.framing_errors >= 1


@pytest.mark.parametrize("raw", [MBUS_RAW, HDLC_RAW, GBT_RAW], ids=["mbus", "hdlc", "gbt"])
def test_truncated_frame_then_good_telegram(raw):
    want = decode_one(raw)
    for cut in range(1, len(raw) - 1):
        s = Sink().feed(raw[:cut] + raw)
        assert s.payloads() == [want], cut
        assert s.reader.buffered <= CAP
    # only the closing flag missing: for HDLC that is a shared flag (the next opening flag
    # closes the frame), for M-Bus a missing stop byte
    s = Sink().feed(raw[:-1] + raw)
    assert s.payloads() == ([want] * 2 if raw[0] == 0x7E else [want])


@pytest.mark.parametrize(
    "raw", [MBUS_RAW, TINETZ_RAW, HDLC_RAW, GBT_RAW], ids=["mbus", "tinetz", "hdlc", "gbt"]
)
def test_flipped_bit_counts_checksum_error_and_next_telegram_decodes(raw):
    want = decode_one(raw)
    hdlc = raw[0] == 0x7E
    first = (10, min(130, len(raw) - 3)) if hdlc else (9, 250)  # data bytes of the first frame
    for pos in range(first[0], first[1], 3):
        bad = bytearray(raw)
        bad[pos] ^= 1 << (pos % 8)
        s = Sink().feed(bytes(bad) + raw)
        assert s.payloads() == [want], pos
        assert s.reader.checksum_errors == 1, pos
        assert s.errors[0].args[0] == ("HDLC FCS mismatch" if hdlc else "M-Bus checksum mismatch")
        assert isinstance(s.reader.last_error, FrameError)


def test_stop_byte_and_length_mismatch():
    f = mbus_split(MBUS_RAW)
    want = PAYLOADS["netznoe-kaifa-ma309m-real"]
    bad_stop = f[0][:-1] + b"\x17" + f[1]
    s = Sink().feed(bad_stop + MBUS_RAW)
    assert s.payloads() == [want] and s.reader.checksum_errors == 0
    assert "M-Bus stop byte missing" in [e.args[0] for e in s.errors]
    bad_l = bytearray(MBUS_RAW)
    bad_l[2] = 0xF9  # L1 != L2
    s = Sink().feed(bytes(bad_l) + MBUS_RAW)
    assert s.payloads() == [want]
    assert s.errors[0].args[0] == "M-Bus length fields differ"
    assert s.reader.framing_errors >= 1


def test_lying_lengths_larger_than_buffer():
    want = PAYLOADS["burgenland-lg-e450-1"]
    huge = b"\x7e\xa7\xff\xce\xff\x03\x13\x00\x00" + bytes(20)  # 11-bit length 2047
    s = Sink().feed(huge + HDLC_RAW)
    assert s.payloads() == [want]
    assert s.errors[0].args[0] == "HDLC frame length out of range"
    # an M-Bus candidate with the largest L waits for its bytes, is rejected, the frame inside
    # it is still found
    s = Sink().feed(b"\x68\xff\xff\x68" + MBUS_RAW + bytes(300))
    assert s.payloads() == [PAYLOADS["netznoe-kaifa-ma309m-real"]]
    assert s.reader.buffer_high_water <= CAP
    # HDLC length that promises more than the header, and address fields that never end
    s = Sink().feed(b"\x7e\xa0\x05\x03\x03\x13\x00\x00\x7e" + b"\x7e\xa0\x20" + bytes(8) + HDLC_RAW)
    assert s.payloads() == [want]
    assert [e.args[0] for e in s.errors] == [
        "HDLC frame length out of range",
        "HDLC address field invalid",
    ]


# -- floods --------------------------------------------------------------------------------------


def _flood(data, chunk):
    s = Sink()
    t0 = time.perf_counter()
    s.feed(data, chunk)
    elapsed = time.perf_counter() - t0
    r = s.reader
    assert r.buffer_high_water <= CAP and r.buffered <= CAP
    assert r.bytes_in == len(data)
    s.feed(MBUS_RAW + HDLC_RAW + MBUS_RAW)  # the reader still works afterwards
    return s, elapsed


def test_noise_flood_random_megabyte():
    data = random.Random(99).randbytes(1 << 20)
    s, elapsed = _flood(data, 997)
    assert elapsed < 10.0
    assert s.payloads()[-2:] == [
        PAYLOADS["burgenland-lg-e450-1"],
        PAYLOADS["netznoe-kaifa-ma309m-real"],
    ]


@pytest.mark.parametrize(
    "data",
    [b"\x68" * 10240, b"\x7e\x16" * 5120, b"\x7e" * 10240, b"\x16" * 10240, b"\x7e\xa0" * 5120],
    ids=["68", "7e16", "7e", "16", "7ea0"],
)
def test_noise_flood_start_bytes(data):
    s, elapsed = _flood(data, 64)
    assert elapsed < 5.0
    assert s.payloads()[-3:] == [
        PAYLOADS["netznoe-kaifa-ma309m-real"],
        PAYLOADS["burgenland-lg-e450-1"],
        PAYLOADS["netznoe-kaifa-ma309m-real"],
    ]
    assert len(s.errors) == s.reader.framing_errors + s.reader.checksum_errors


# -- sequence errors -------------------------------------------------------------------------------


def test_mbus_segments_out_of_order_gap_restart_orphan():
    data = bytes(random.Random(5).randrange(256) for _ in range(600))
    f = mbus_split(frames.mbus_frames(data, max_data=200))
    assert len(f) == 3
    good = b"".join(f)
    cases = {
        "swapped": f[0] + f[2] + f[1],
        "gap": f[0] + f[2],
        "restart": f[0] + f[1] + f[0] + f[1] + f[2],
        "orphan": f[1] + f[2],
        "duplicate": f[0] + f[1] + f[1] + f[2],
    }
    for name, bad in cases.items():
        s = Sink().feed(bad + good)
        if name == "restart":  # the second start discards the first, then completes
            assert s.payloads() == [data, data], name
        else:
            assert s.payloads() == [data], name
        assert s.reader.framing_errors >= 1, name
        assert "M-Bus segment out of sequence" in [e.args[0] for e in s.errors], name
        assert s.reader.checksum_errors == 0


def _gbt_stream(payload, order, size=50, **kw):
    blocks = [payload[i : i + size] for i in range(0, len(payload), size)]
    out = b""
    for k in order:
        info = frames.gbt_block(blocks[k - 1], k, k == len(blocks), **kw)
        out += frames.hdlc_frame((frames.LLC if k == 1 else b"") + info)
    return out


def test_gbt_blocks_out_of_order():
    data = bytes(random.Random(6).randrange(256) for _ in range(180))  # 4 blocks of <= 50
    good = _gbt_stream(data, [1, 2, 3, 4])
    assert Sink().feed(good, 3).payloads() == [data]
    for order in ([1, 3, 2, 4], [2, 3, 4], [1, 2, 4], [1, 2, 2, 3, 4]):
        s = Sink().feed(_gbt_stream(data, order) + good)
        assert s.payloads() == [data], order
        assert "GBT block out of sequence" in [e.args[0] for e in s.errors], order
    # restart at block 1 discards the partial transfer and completes the new one
    s = Sink().feed(_gbt_stream(data, [1, 2, 1, 2, 3, 4]))
    assert s.payloads() == [data] and s.reader.framing_errors == 1


def test_gbt_length_mismatch_and_long_length_form():
    data = bytes(range(256)) * 2
    wire = frames.hdlc_gbt_frames(data, block_size=200)  # 81 C8 length form
    assert Sink().feed(wire, 11).payloads() == [data]
    info = bytearray(frames.gbt_block(data[:40], 1, True))
    info[6] = 41  # says 41, carries 40
    s = Sink().feed(frames.hdlc_frame(frames.LLC + bytes(info)) + wire)
    assert s.payloads() == [data] and s.errors[0].args[0] == "GBT block length mismatch"


def test_hdlc_segmented_frames():
    data = bytes(random.Random(8).randrange(256) for _ in range(700))
    wire = frames.hdlc_frames(data, max_info=120)
    assert wire[1] & 0x08  # the first frame has the segmentation bit
    for chunk in (1, 5, 121, len(wire)):
        assert Sink().feed(wire, chunk).payloads() == [data]
    kng = frames.hdlc_frames(data, max_info=100, dst=b"\xcf", src=b"\x02\x23")
    assert Sink().feed(kng).payloads() == [data]
    parts = wire.split(b"\x7e\x7e")
    lost = b"\x7e\x7e".join(parts[:2] + parts[3:])
    # UI frames carry no sequence number: a lost middle segment yields a short payload (the
    # decoder's DLMS length check rejects it); the next telegram is whole
    got = Sink().feed(lost + wire).payloads()
    assert got == [data[:237] + data[357:], data]
    # I-frames number their segments (N(S)): the gap is detected here
    iwire = frames.hdlc_frames(data, max_info=120, i_frames=True)
    assert Sink().feed(iwire, 7).payloads() == [data]
    parts = iwire.split(b"\x7e\x7e")
    s = Sink().feed(b"\x7e\x7e".join(parts[:2] + parts[3:]) + b"\x7e" + iwire)
    assert s.payloads() == [data]
    assert s.errors[0].args[0] == "HDLC segment out of sequence"


def test_gbt_block_inside_segmented_hdlc_frames():
    data = bytes(random.Random(9).randrange(256) for _ in range(300))
    out = b""
    for k, i in enumerate(range(0, 300, 100)):
        info = (frames.LLC if k == 0 else b"") + frames.gbt_block(
            data[i : i + 100], k + 1, i == 200
        )
        out += frames.hdlc_frame(info[:60], segmented=True) + frames.hdlc_frame(info[60:])
    for chunk in (1, 7, len(out)):
        assert Sink().feed(out, chunk).payloads() == [data]
    # an unsegmented APDU after an unfinished transfer is delivered, the transfer is dropped
    s = Sink().feed(out[: len(out) // 2] + frames.hdlc_frames(b"\x0f\x00\x01"))
    assert s.payloads() == [b"\x0f\x00\x01"] and s.errors[-1].args[0] == "GBT transfer interrupted"


def test_payload_overflow_is_counted_and_next_telegram_decodes():
    big = bytes(PCAP + 300)
    cases = [
        frames.mbus_frames(big, max_data=245),
        frames.hdlc_frames(big, max_info=200),
        frames.hdlc_gbt_frames(big, block_size=200),
    ]
    for wire in cases:
        s = Sink().feed(wire + MBUS_RAW + GBT_RAW)
        assert s.payloads() == [PAYLOADS["netznoe-kaifa-ma309m-real"], PAYLOADS["lg-e450-gbt-2"]]
        assert s.reader.overflows == 1
        assert s.reader.framing_errors == 0  # no cascade of sequence errors after the overflow


def test_interleaved_transports_abort_partial():
    f = mbus_split(MBUS_RAW)
    s = Sink().feed(f[0] + HDLC_RAW + f[1] + MBUS_RAW)
    assert s.payloads() == [PAYLOADS["burgenland-lg-e450-1"], PAYLOADS["netznoe-kaifa-ma309m-real"]]
    assert s.reader.framing_errors == 2  # the aborted partial, then the orphan second frame


def test_reset_and_callbacks_without_on_error():
    got = []
    r = FrameReader(lambda p, t: got.append(bytes(p)))
    r.feed(MBUS_RAW[:100])
    assert r.buffered == 100
    r.reset()
    assert r.buffered == 0
    r.feed(MBUS_RAW[100:] + b"\x68\x10\x11\x68" + MBUS_RAW)  # no on_error: still counted
    assert got == [PAYLOADS["netznoe-kaifa-ma309m-real"]]
    assert r.framing_errors >= 1 and isinstance(r.last_error, FrameError)
    r.feed(b"")
    r.feed(bytearray(MBUS_RAW))
    r.feed(memoryview(MBUS_RAW))
    assert len(got) == 3


def _msgs(sink):
    return [e.args[0] for e in sink.errors]


def test_mbus_rare_paths():
    want = PAYLOADS["netznoe-kaifa-ma309m-real"]
    not_dlms = frames.mbus_long_frame(b"\x53\xff\x78" + bytes(30))  # EN 13757-3 CI 0x78
    s = Sink().feed(not_dlms + MBUS_RAW)
    assert s.payloads() == [want] and _msgs(s) == ["M-Bus CI is not a DLMS segment"]
    first_seg = frames.hdlc_frames(bytes(300), max_info=120).split(b"\x7e\x7e")[0] + b"\x7e"
    s = Sink().feed(first_seg + MBUS_RAW)
    assert s.payloads() == [want] and _msgs(s) == ["Telegram interrupted by an M-Bus frame"]


def test_hdlc_rare_paths():
    want = PAYLOADS["burgenland-lg-e450-1"]
    head = b"\xa0\x07\xce\xff\x02\x23\x13"  # length 7 cannot hold 4 address bytes + HCS
    s = Sink().feed(b"\x7e" + head + bytes(8) + HDLC_RAW)
    assert s.payloads() == [want] and _msgs(s) == ["HDLC frame length out of range"]
    one = frames.hdlc_frame(b"\x01")  # then cut the info to 1 byte: no room for an FCS
    short = bytearray(one[:-3] + b"\x7e")
    short[2] -= 2
    hcs = crc16_x25(short[1:7])
    short[7:9] = bytes((hcs & 0xFF, hcs >> 8))
    s = Sink().feed(bytes(short) + HDLC_RAW)
    assert s.payloads() == [want] and _msgs(s) == ["HDLC frame length out of range"]
    # a frame without an information field, or with only the LLC, is valid and carries nothing
    s = Sink().feed(frames.hdlc_frame(b"") + frames.hdlc_frames(b"") + HDLC_RAW)
    assert s.payloads() == [want] and s.reader.frames_ok == 3 and not s.errors
    # UI segment followed by a new message (LLC): the unfinished one is dropped
    data = bytes(range(200))
    seg = frames.hdlc_frames(data, max_info=120)
    s = Sink().feed(seg.split(b"\x7e\x7e")[0] + b"\x7e" + seg)
    assert s.payloads() == [data] and _msgs(s) == ["HDLC segment out of sequence"]
    # I-frame gap, then a new message arrives while the rest of the broken one is skipped
    big = bytes(range(256)) * 2
    iw = frames.hdlc_frames(big, max_info=100, i_frames=True)
    parts = iw.split(b"\x7e\x7e")
    broken = b"\x7e\x7e".join(parts[:1] + parts[2:4]) + b"\x7e"
    s = Sink().feed(broken + iw)
    assert s.payloads() == [big] and _msgs(s) == ["HDLC segment out of sequence"]


def test_gbt_rare_paths():
    data = bytes(range(256)) + bytes(range(100))
    unfinished = _gbt_stream(data, [1, 2], size=100)
    seg_apdu = frames.hdlc_frames(data, max_info=120)  # segmented, not GBT
    s = Sink().feed(unfinished + seg_apdu)
    assert s.payloads() == [data] and _msgs(s) == ["GBT transfer interrupted"]
    s = Sink().feed(
        frames.hdlc_frames(b"\xe0\x40\x00\x01") + frames.hdlc_gbt_frames(data, block_size=300)
    )
    assert s.payloads() == [data] and _msgs(s) == ["GBT block header truncated"]
    assert frames.gbt_block(data[:300], 1, True)[6:9] == b"\x82\x01\x2c"
    bad = frames.gbt_block(b"x", 1, True)[:6] + b"\x83\x00\x00\x01x"
    s = Sink().feed(frames.hdlc_frames(bad) + GBT_RAW)
    assert s.payloads() == [PAYLOADS["lg-e450-gbt-2"]] and _msgs(s) == ["GBT block length invalid"]


_MP_SCRIPT = """
import gc, json
from smartmeter.protocol.transport import FrameReader, crc16_x25, RAW_CAPACITY
with open("frames.json") as f:
    data = json.load(f)
caps = [bytes.fromhex(v["raw_hex"]) for v in data["frames"] + data["framing_only"]]
got = []
errs = []
r = FrameReader(lambda p, t: got.append((len(p), t, bytes(p[:2]))), "auto", errs.append)
for raw in caps:
    for chunk in (1, 7, 64, 1000):
        for i in range(0, len(raw), chunk):
            r.feed(raw[i:i + chunk])
r.feed(b"\\x68" * 3000 + bytes(range(256)) * 8 + b"\\x7e" * 2000)
r.feed(caps[1])
print(hex(crc16_x25(b"123456789")), len(got), len(errs), r.buffer_high_water <= RAW_CAPACITY)
print(sorted(set(g[0] for g in got)), sorted(set(g[1] for g in got)), set(g[2] for g in got))
n = [0]
def count(p, t):
    n[0] += 1
r2 = FrameReader(count)
stream = caps[1] + caps[3] + caps[5]
r2.feed(stream)
gc.collect()
a0 = gc.mem_alloc()
for _ in range(20):
    r2.feed(stream)
print(n[0], (gc.mem_alloc() - a0) // 60)
"""


def test_runs_under_micropython(run_micropython):
    rc, out, err = run_micropython(
        _MP_SCRIPT, files=["smartmeter", ("tests/vectors/real-frames.json", "frames.json")]
    )
    assert rc == 0, err
    lines = out.splitlines()
    same = Sink()  # the same feeds under CPython: the same number of telegrams and errors
    for _, raw, _, _ in CAPTURES:
        for chunk in (1, 7, 64, 1000):
            same.feed(raw, chunk)
    same.feed(b"\x68" * 3000 + bytes(range(256)) * 8 + b"\x7e" * 2000 + MBUS_RAW)
    assert len(same.telegrams) == 4 * len(CAPTURES) + 1
    assert lines[0] == "0x906e {} {} True".format(len(same.telegrams), len(same.errors))
    assert lines[1] == "[105, 106, 260, 272, 354] ['hdlc', 'mbus'] {b'\\xdb\\x08'}"
    count, alloc_per_telegram = map(int, lines[2].split())
    assert count == 63
    assert alloc_per_telegram < 400  # a few memoryview slices per frame, nothing per byte


# -- fuzz ----------------------------------------------------------------------------------------

SEEDS = [c[1] for c in CAPTURES] + [frames.mbus_frames(PAYLOADS[IDS[1]], t210_overflow=True)]


@st.composite
def streams(draw):
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.binary(max_size=3000))
    parts = draw(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=4))
    data = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.integers(0, 3))
        i = draw(st.integers(0, len(data)))
        if op == 0 and i < len(data):
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            data[i:i] = draw(st.binary(max_size=40))
        elif op == 2:
            del data[i : i + draw(st.integers(1, 60))]
        else:
            j = draw(st.integers(0, len(data)))
            data[i:i] = data[j : j + draw(st.integers(1, 300))]
    return bytes(data)


def _run(data, cuts, name="auto"):
    s = Sink(name)
    prev = 0
    for c in sorted(cuts) + [len(data)]:
        s.feed(data[prev:c])
        prev = c
    return s


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=streams(),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
    name=st.sampled_from(["auto", "mbus", "hdlc"]),
)
def test_fuzz_never_raises_and_does_not_depend_on_chunking(data, cuts, name):
    cuts = [c for c in cuts if c <= len(data)]
    whole = _run(data, [], name)
    chunked = _run(data, cuts, name)
    assert chunked.telegrams == whole.telegrams
    assert chunked.counters() == whole.counters()
    assert [e.args for e in chunked.errors] == [e.args for e in whole.errors]
    r = chunked.reader
    assert r.bytes_in == len(data)
    assert r.bytes_skipped <= r.bytes_in - r.buffered
    assert r.telegrams == len(chunked.telegrams) <= r.frames_ok
    assert r.framing_errors + r.checksum_errors + r.overflows == len(chunked.errors)
    assert r.buffered <= r.buffer_high_water <= CAP
    assert all(isinstance(e, FrameError) for e in chunked.errors)
