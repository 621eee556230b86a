# Runs INSIDE the MicroPython VM (bench/__main__.py starts it): the real Kaifa capture.
# The VM's ticks_us has 1 ms resolution: every figure is the total over N runs / N.
import gc
import json
import time

from smartmeter.protocol.crypto import Gcm
from smartmeter.protocol.dlms import Decoder, Envelope
from smartmeter.protocol.pipeline import Pipeline
from smartmeter.protocol.transport import FrameReader

with open("frames.json") as f:
    data = json.load(f)
frame = [x for x in data["frames"] if x["id"] == "netznoe-kaifa-ma309m-real"][0]
raw = bytes.fromhex(frame["raw_hex"])
key = bytes.fromhex(frame["key"])
N = 300


def per_us(fn, n=N):
    fn()
    t0 = time.ticks_ms()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_ms(), t0) * 1000 / n


payloads = []
FrameReader(lambda p, _n: payloads.append(bytes(p))).feed(raw)
payload = payloads[0]
env = Envelope(payload)
gcm = Gcm(key, None, "python")
ct = payload[env.start : env.tag_start]
dst = bytearray(len(ct))
blocks = (len(ct) + 15) // 16
sink = FrameReader(lambda p, _n: None)
dec = Decoder(gcm)
dec.decode(payload)
gcm.decrypt_into(env.system_title, env.frame_counter, env.security, ct, dst)
apdu = bytes(dst)
out = []
pipe = Pipeline(key, None, out.append, out.append, aes_backend="python")


def whole():
    pipe.decoder._last_counter = None
    pipe.feed(raw)
    out.pop()


blk_in, blk_out = bytearray(16), bytearray(16)
aes_block = per_us(lambda: gcm.cipher.encrypt_block(blk_in, blk_out), 3000)
framing = per_us(lambda: sink.feed(raw))
decrypt = per_us(
    lambda: gcm.decrypt_into(env.system_title, env.frame_counter, env.security, ct, dst)
)
parsing = per_us(lambda: dec.decode_apdu(apdu))
total = per_us(whole)
aes_share = blocks * aes_block
print("mpy framing_us %.0f" % framing)
print(
    "mpy decrypt_us %.0f (aes block primitive %.1f us x %d blocks = %.0f us; rest %.0f us)"
    % (decrypt, aes_block, blocks, aes_share, decrypt - aes_share)
)
print("mpy parsing_us %.0f" % parsing)
print("mpy whole_us %.0f whole_excluding_aes_us %.0f" % (total, total - aes_share))

# Allocation per telegram (gc off so nothing is freed while counting)
whole()
gc.collect()
gc.disable()
before = gc.mem_alloc()
for _ in range(20):
    whole()
after = gc.mem_alloc()
gc.enable()
print("mpy alloc_bytes_per_telegram %d" % ((after - before) // 20))

# GHASH: tag verification of a 243-byte ciphertext (17-byte AAD), AES part excluded
auth = bytes(range(16))
tagged = Gcm(key, auth, "python")
ct243 = bytes(243)
tag_out = bytearray(16)
tagged._set_iv(env.system_title, 1)
tag_us = per_us(lambda: tagged._tag_into(0x30, ct243, tag_out), 200)
print("mpy ghash_243_us %.0f (tag incl. one AES block: %.0f us)" % (tag_us - aes_block, tag_us))

# The formats of issue 10: whole pipeline per telegram, first (general walk alone) and
# steady state (learned shape), pure-Python AES (CBC for AMIS, CTR for the others).
try:
    with open("more.json") as f:
        more = {x["id"]: x for x in json.load(f)["frames"]}
except OSError:
    more = {}
for label, ident in (
    ("wienernetze", "wn-am550-rddl-a8d899"),
    ("e450-list", "klu-lge450-rddl-f13a-12500286"),
    ("amis", "ooe-amis-vzlogger-0"),
    ("t210dr", "stmk-t210dr-rddl-fc252"),
):
    if ident not in more:
        continue
    fr = more[ident]
    raw_m = bytes.fromhex(fr["raw_hex"])
    got = []
    pm = Pipeline(
        bytes.fromhex(fr["key"]),
        None,
        got.append,
        got.append,
        "raw" if raw_m[0] == 0xDB else "auto",
        aes_backend="python",
    )
    dm = pm.decoder

    def once(first, pm=pm, dm=dm, raw_m=raw_m, got=got):
        dm._last_counter = None
        if first:
            dm._template = dm._dsmr_template = dm._oms_template = None
            dm._walked = dm._dsmr_walked = dm._oms_walked = -1
        pm.feed(raw_m)
        got.pop()

    print(
        "mpy %s first_us %.0f steady_us %.0f (whole pipeline incl. pure-Python AES)"
        % (label, per_us(lambda: once(True), 50), per_us(lambda: once(False), 50))
    )
