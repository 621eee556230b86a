"""The real captures kept in this repository (tests/vectors), loaded once for every test module.

``real-frames.json`` (the first set) and ``austria-more.json`` (issue 10's formats). Nothing
outside the repository is read: the suite must pass in a fresh clone.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VECTORS = os.path.join(ROOT, "tests", "vectors")


def _load(name):
    with open(os.path.join(VECTORS, name), encoding="utf-8") as f:
        return json.load(f)


DATA = _load("real-frames.json")
FRAMES = DATA["frames"]
PLAINTEXT_ONLY = DATA["plaintext_only"]
FRAMING_ONLY = DATA["framing_only"]
GCM_VECTORS = DATA["gcm_vectors"]
MORE = _load("austria-more.json")["frames"]
MORE_BY_ID = {f["id"]: f for f in MORE}


def by_id(ident):
    for group in (FRAMES, PLAINTEXT_ONLY, FRAMING_ONLY, GCM_VECTORS):
        for item in group:
            if item["id"] == ident:
                return item
    raise KeyError(ident)


def key_bytes(hex_text):
    return bytes.fromhex(hex_text) if hex_text else None
