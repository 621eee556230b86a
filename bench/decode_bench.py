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
MORE = os.path.join(os.path.dirname(HERE), "tests", "vectors", "austria-more.json")
# one capture of each format issue 10 added
NEW_FORMATS = (
    ("Wiener Netze AM550", "wn-am550-rddl-a8d899"),
    ("Klagenfurt E450 (GBT)", "klu-lge450-rddl-f13a-12500286"),
    ("Netz OOe AMIS", "ooe-amis-vzlogger-0"),
    ("Steiermark T210-D-r", "stmk-t210dr-rddl-fc252"),
)
# Klagenfurt's currents/voltages have no stated scale: not in its expected values
_UNSCALED = ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0", "1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0")


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


def ours_decoder(raw, key, auth, first=False, learning=False):
    """A callable decoding ``raw`` with the full pipeline each call (as the device does).

    :param first: forget everything learned before each call: every call is a meter's first
        telegram (the general walk alone)
    :param learning: forget the learned shape but not the length seen: every call is a meter's
        second telegram (the general walk, plus learning the shape; once per meter)
    """
    out = []
    transport = "raw" if raw[:1] == b"\xdb" else "auto"  # the T210-D-r line setting
    pipe = Pipeline(key, auth, out.append, out.append, transport)
    dec = pipe.decoder

    def run():
        dec._last_counter = None  # the same capture again is not a duplicate here
        if first or learning:
            dec._template = dec._dsmr_template = dec._oms_template = None
        if first:
            dec._walked = dec._dsmr_walked = dec._oms_walked = -1
        pipe.feed(raw)
        return out.pop()

    return run


def _more_frames():
    with open(MORE, encoding="utf-8") as f:
        by_id = {x["id"]: x for x in json.load(f)["frames"]}
    out = []
    for label, ident in NEW_FORMATS:
        frame = by_id[ident]
        key = bytes.fromhex(frame["key"])
        auth = bytes.fromhex(frame["auth_key"]) if frame.get("auth_key") else None
        out.append((label, frame, bytes.fromhex(frame["raw_hex"]), key, auth))
    return out


def _matches(got, frame):
    expected = frame["expected"]["values"]
    extra = set(got) - set(expected)
    if extra and not (frame["id"].startswith("klu-") and extra <= set(_UNSCALED)):
        return False
    return all(
        k in got
        and (
            got[k] == expected[k]
            or (isinstance(got[k], float) and abs(got[k] - expected[k]) <= 1e-9 * abs(expected[k]))
        )
        for k in expected
    )


def first_and_steady(captures, rounds=11, batch=100):
    """Ours (first telegram and steady state) vs every peer that decodes each capture.

    :param captures: ``(label, frame, raw, key, auth)`` tuples
    :returns: one dict per capture: µs medians, which peers cannot decode (and why)
    """
    from bench import peers

    results = []
    for label, frame, raw, key, auth in captures:
        contenders = {
            "first": ours_decoder(raw, key, auth, first=True),
            "learning": ours_decoder(raw, key, auth, learning=True),
            "steady": ours_decoder(raw, key, auth),
        }
        cannot = {}
        for name, fn in peers.PEERS.items():
            try:
                got = fn(raw, key, auth)
            except Exception as exc:  # noqa: BLE001 - a peer that cannot decode is reported
                cannot[name] = str(exc).split("\n")[0][:60] or type(exc).__name__
                continue
            if not _matches(got, frame):
                cannot[name] = "wrong values"
                continue
            contenders[name] = lambda f=fn: f(raw, key, auth)
        for name in ("first", "learning", "steady"):
            reading = contenders[name]()
            assert _matches(reading.values, frame), (frame["id"], reading)
        times = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, fn in contenders.items():
                times[name].append(_per_call_us(fn, batch))
        med = {name: statistics.median(v) for name, v in times.items()}
        peer_us = {k: v for k, v in med.items() if k not in _OURS}
        fastest = min(peer_us, key=peer_us.get) if peer_us else None
        results.append(
            {
                "label": label,
                "capture": frame["id"],
                "us": med,
                "cannot": cannot,
                "fastest_peer": fastest,
                "first_ratio": peer_us[fastest] / med["first"] if fastest else None,
                "learning_ratio": peer_us[fastest] / med["learning"] if fastest else None,
                "steady_ratio": peer_us[fastest] / med["steady"] if fastest else None,
            }
        )
    return results


_OURS = ("first", "learning", "steady")


def report_first(out, captures):
    out(
        "%-26s %8s %8s %8s | %s"
        % ("capture", "first", "learning", "steady", "peers (µs) / cannot decode")
    )
    for row in first_and_steady(captures):
        us = row["us"]
        peers_txt = ", ".join("%s %.0f" % (k, v) for k, v in sorted(us.items()) if k not in _OURS)
        cannot = "; ".join("%s: %s" % kv for kv in sorted(row["cannot"].items()))
        ratio = (
            "fastest peer / ours: first %.1fx, learning %.1fx, steady %.1fx"
            % (row["first_ratio"], row["learning_ratio"], row["steady_ratio"])
            if row["fastest_peer"]
            else "no peer decodes it"
        )
        out(
            "%-26s %8.1f %8.1f %8.1f | %s | %s%s"
            % (
                row["label"],
                us["first"],
                us["learning"],
                us["steady"],
                peers_txt or "-",
                ratio,
                (" | cannot decode: " + cannot) if cannot else "",
            )
        )


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
    dec.decode(payload)  # the first telegram; the warm-up call below is the one that learns
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
    out("")
    out("== µs per telegram: first (general walk), learning (the 2nd: walk + learning the shape,")
    out("   once per meter), steady (learned shape); peers that decode it, and which cannot ==")
    out("-- the formats of issue 10 (austria-more.json) --")
    report_first(out, _more_frames())
    out("-- the earlier captures (real-frames.json) --")
    report_first(out, [(f["id"][:26], f, raw, key, auth) for f, raw, key, auth in _frames()])
    return worst
