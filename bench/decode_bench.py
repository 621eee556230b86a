"""Decoding benchmark on CPython: our stages per real capture, and the PyPI peers side by side.

Ours and every peer that decodes a capture correctly are timed in interleaved rounds of one run
(round k times each decoder once over a batch, in turn), so machine noise hits all alike; each
figure is the median over the rounds. The ratio is fastest correct peer / ours.
"""

import json
import os
import statistics
import time

from smartmeter.protocol.crypto import Gcm
from smartmeter.protocol.dlms import Decoder, Envelope
from smartmeter.protocol.pipeline import Pipeline
from smartmeter.protocol.transport import FrameReader

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(os.path.dirname(HERE), "tests", "vectors", "real-frames.json")


def _frames():
    with open(VECTORS, encoding="utf-8") as f:
        data = json.load(f)
    out = []
    for frame in data["frames"]:
        key = bytes.fromhex(frame["key"])
        auth = bytes.fromhex(frame["auth_key"]) if frame.get("auth_key") else None
        out.append((frame, bytes.fromhex(frame["raw_hex"]), key, auth))
    return out


def _per_call_us(fn, batch):
    t0 = time.perf_counter()
    for _ in range(batch):
        fn()
    return (time.perf_counter() - t0) / batch * 1e6


def ours_decoder(raw, key, auth):
    """A callable decoding ``raw`` with the full pipeline each call (as the device does)."""
    out = []
    pipe = Pipeline(key, auth, out.append, out.append)
    dec = pipe.decoder

    def run():
        dec._last_counter = None  # the same capture again is not a duplicate here
        pipe.feed(raw)
        return out.pop()

    return run


def stages(raw, key, auth, batch=2000):
    """µs per telegram for framing, decryption, parsing and the whole (median of 5)."""
    payloads = []
    reader = FrameReader(lambda p, _n: payloads.append(bytes(p)))
    reader.feed(raw)
    payload = payloads[0]
    env = Envelope(payload)
    gcm = Gcm(key, auth)
    tag = payload[env.tag_start :] if env.security & 0x10 else None
    ct = payload[env.start : env.tag_start]
    dst = bytearray(len(ct))
    dec = Decoder(gcm)
    dec.decode(payload)  # learns the template, as on the device after the first telegram
    gcm.decrypt_into(env.system_title, env.frame_counter, env.security, ct, dst, tag)
    apdu = bytes(dst)
    sink = FrameReader(lambda p, _n: None)
    whole = ours_decoder(raw, key, auth)
    fns = {
        "framing": lambda: sink.feed(raw),
        "decryption": lambda: gcm.decrypt_into(
            env.system_title, env.frame_counter, env.security, ct, dst, tag
        ),
        "parsing": lambda: dec.decode_apdu(apdu),
        "whole": whole,
    }
    res = {}
    for name, fn in fns.items():
        fn()
        res[name] = statistics.median(_per_call_us(fn, batch) for _ in range(5))
    return res


def compare(rounds=15, batch=200):
    """Interleaved rounds: ours vs every peer that decodes the capture correctly."""
    from bench import peers

    results = []
    for frame, raw, key, auth in _frames():
        expected = frame["expected"]["values"]
        contenders = {"ours": ours_decoder(raw, key, auth)}
        correct = {}
        for name, fn in peers.PEERS.items():
            try:
                got = fn(raw, key, auth)
            except Exception:  # noqa: BLE001 - a peer that cannot decode is reported, not timed
                correct[name] = False
                continue
            ok = set(got) == set(expected) and all(
                got[k] == expected[k]
                or (
                    isinstance(got[k], float)
                    and abs(got[k] - expected[k]) <= 1e-9 * abs(expected[k])
                )
                for k in expected
            )
            correct[name] = ok
            if ok:
                contenders[name] = lambda f=fn: f(raw, key, auth)
        reading = contenders["ours"]()
        assert reading.values == expected, frame["id"]
        times = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, fn in contenders.items():
                times[name].append(_per_call_us(fn, batch))
        med = {name: statistics.median(v) for name, v in times.items()}
        peers_ok = {k: v for k, v in med.items() if k != "ours"}
        fastest = min(peers_ok, key=peers_ok.get) if peers_ok else None
        results.append(
            {
                "capture": frame["id"],
                "us": med,
                "correct": correct,
                "fastest_peer": fastest,
                "ratio": (peers_ok[fastest] / med["ours"]) if fastest else None,
            }
        )
    return results


def report(out):
    out("== Decoding on CPython (µs per telegram, median) ==")
    out("%-34s %9s %10s %8s %8s" % ("capture", "framing", "decryption", "parsing", "whole"))
    for frame, raw, key, auth in _frames():
        s = stages(raw, key, auth)
        out(
            "%-34s %9.1f %10.1f %8.1f %8.1f"
            % (frame["id"], s["framing"], s["decryption"], s["parsing"], s["whole"])
        )
    out("")
    out("== Ours vs PyPI peers, interleaved rounds (µs per telegram, median) ==")
    worst = None
    for row in compare():
        peers_txt = ", ".join(
            "%s %.0f" % (k, v) for k, v in sorted(row["us"].items()) if k != "ours"
        )
        wrong = [k for k, ok in row["correct"].items() if not ok]
        ratio = row["ratio"]
        out(
            "%-34s ours %6.1f | %s%s | fastest correct peer / ours = %s"
            % (
                row["capture"],
                row["us"]["ours"],
                peers_txt,
                (" | cannot decode: " + ", ".join(wrong)) if wrong else "",
                ("%.1fx" % ratio) if ratio else "n/a",
            )
        )
        if ratio is not None:
            worst = ratio if worst is None else min(worst, ratio)
    out("lowest ratio over all captures: %.1fx (target >= 4x)" % worst)
    return worst
