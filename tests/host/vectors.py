"""The real captures (copied from shared/vectors into tests/vectors), loaded once.

Only the repository's own copy is read: a user's clone has no ../shared.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
_CANDIDATES = (os.path.join(ROOT, "tests", "vectors", "real-frames.json"),)


def _load():
    for path in _CANDIDATES:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
    raise FileNotFoundError("real-frames.json not found in " + ", ".join(_CANDIDATES))


DATA = _load()
FRAMES = DATA["frames"]
PLAINTEXT_ONLY = DATA["plaintext_only"]
FRAMING_ONLY = DATA["framing_only"]
GCM_VECTORS = DATA["gcm_vectors"]


def by_id(ident):
    for group in (FRAMES, PLAINTEXT_ONLY, FRAMING_ONLY, GCM_VECTORS):
        for item in group:
            if item["id"] == ident:
                return item
    raise KeyError(ident)


def key_bytes(hex_text):
    return bytes.fromhex(hex_text) if hex_text else None
