"""Fuzzing: 100 000+ mutated and random inputs through the reader and the decoder.

Only the documented exceptions (MeterError subclasses) may come out of the decoder, the reader
never raises, its buffer never exceeds its capacity, and nothing hangs (each input is bounded).
"""

import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import FRAMES, PLAINTEXT_ONLY

from sim import telegrams
from smartmeter.protocol import reading as r
from smartmeter.protocol.crypto import Gcm
from smartmeter.protocol.dlms import Decoder
from smartmeter.protocol.errors import MeterError
from smartmeter.protocol.transport import RAW_CAPACITY, FrameReader

SEEDS = [bytes.fromhex(f["raw_hex"]) for f in FRAMES]
PLAINS = [bytes.fromhex(f["plaintext_hex"]) for f in FRAMES + PLAINTEXT_ONLY]
KEYS = {bytes.fromhex(f["raw_hex"]): (f["key"], f.get("auth_key")) for f in FRAMES}


def _mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(6)
        if not data:
            data = bytearray(rng.randbytes(rng.randint(1, 64)))
        pos = rng.randrange(len(data))
        if op == 0:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos] = rng.randrange(256)
        elif op == 2:
            del data[pos : pos + rng.randint(1, 16)]
        elif op == 3:
            data[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 4:
            data[pos:pos] = data[rng.randrange(len(data)) :][: rng.randint(1, 32)]
        else:
            data[pos] = rng.choice((0x68, 0x16, 0x7E, 0xDB, 0x0F, 0x81, 0x82, 0x02, 0x09))
    return bytes(data)


class _Sink:
    def __init__(self, decoder):
        self.decoder = decoder
        self.readings = 0
        self.errors = 0

    def telegram(self, payload, _name):
        try:
            self.decoder.decode(payload)
            self.readings += 1
        except MeterError:
            self.errors += 1


def test_100k_mutated_and_random_streams():
    rng = random.Random(20261124)
    gcms = {
        raw: Gcm(bytes.fromhex(k), bytes.fromhex(a) if a else None) for raw, (k, a) in KEYS.items()
    }
    readers = {}
    cases = 0
    slowest = 0.0
    worst_buffer = 0
    start = time.perf_counter()
    while cases < 100_000:
        seed = rng.choice(SEEDS)
        if rng.random() < 0.1:
            data = rng.randbytes(rng.randint(0, 600))
        else:
            data = _mutate(rng, seed)
        if seed not in readers:
            sink = _Sink(Decoder(gcms[seed]))
            readers[seed] = (FrameReader(sink.telegram), sink)
        reader, sink = readers[seed]
        t0 = time.perf_counter()
        chunk = rng.choice((1, 7, 64, 300, len(data) or 1))
        for i in range(0, len(data), chunk):
            reader.feed(data[i : i + chunk])  # must never raise
        slowest = max(slowest, time.perf_counter() - t0)
        worst_buffer = max(worst_buffer, reader.buffer_high_water)
        cases += 1
    # plaintext fuzz: the A-XDR walker and layouts alone
    dec = Decoder()
    for _ in range(30_000):
        data = _mutate(rng, rng.choice(PLAINS))
        try:
            dec.decode_apdu(data)
        except MeterError:
            pass
        cases += 1
    assert worst_buffer <= RAW_CAPACITY
    assert slowest < 0.5, "one input took %.3f s" % slowest
    assert time.perf_counter() - start < 300
    # the fuzz did reach the decoder, both ways
    assert sum(s.readings for _, s in readers.values()) > 0
    assert sum(s.errors for _, s in readers.values()) > 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700), st.integers(min_value=1, max_value=400))
def test_hypothesis_random_bytes_never_escape(data, chunk):
    sink = _Sink(Decoder(Gcm(bytes(16))))
    reader = FrameReader(sink.telegram)
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])  # must not raise; the sink lets only MeterError pass
    assert reader.buffer_high_water <= RAW_CAPACITY
    assert sink.readings + sink.errors == reader.telegrams
    try:
        Decoder(Gcm(bytes(16))).decode(data)
    except MeterError:
        pass


_LAYOUT_VALUES = st.fixed_dictionaries(
    {
        r.A_PLUS: st.integers(0, 2**32 - 1),
        r.A_MINUS: st.integers(0, 2**32 - 1),
        r.P_PLUS: st.integers(0, 2**32 - 1),
        r.P_MINUS: st.integers(0, 2**32 - 1),
        r.R_PLUS: st.integers(0, 2**32 - 1),
        r.R_MINUS: st.integers(0, 2**32 - 1),
        r.U_L1: st.integers(0, 65535).map(lambda v: v / 10),
        r.U_L2: st.integers(0, 655).map(float),
        r.U_L3: st.integers(0, 65535).map(lambda v: v / 10),
        r.I_L1: st.integers(0, 65535).map(lambda v: v / 100),
        r.I_L2: st.integers(0, 65535).map(lambda v: v / 100),
        r.I_L3: st.integers(0, 65535).map(lambda v: v / 100),
        r.POWER_FACTOR: st.integers(0, 1000).map(lambda v: v / 1000),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["netznoe", "tinetz", "burgenland", "kng", "obis-pairs"]),
    st.lists(_LAYOUT_VALUES, min_size=3, max_size=5),
    st.text("0123456789ABCDEF", min_size=1, max_size=16),
)
def test_learned_fast_path_equals_general_path(layout, samples, meter_number):
    """Decoding with the learned template gives exactly what the general walk gives."""
    fast, slow = Decoder(), Decoder()
    slow.learn = False
    for k, values in enumerate(samples):
        values[r.METER_NUMBER] = meter_number
        if layout == "burgenland":
            for key in (r.U_L1, r.U_L2, r.U_L3):
                values[key] = float(int(values[key]))
        apdu = telegrams.plaintext(layout, values, (2024, 7, 1, 12, 0, k), 120, True, k)
        a = fast.decode_apdu(apdu)
        b = slow.decode_apdu(apdu)
        assert a.as_dict() == b.as_dict()
        assert a.meter_time == b.meter_time and a.utc_offset == b.utc_offset
    assert slow.fast == 0
    # the first telegram is walked, the second walked and learned, every later one fast
    assert fast.fast == len(samples) - 2
